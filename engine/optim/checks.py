"""Config checks for `optim_wrapper` and `param_scheduler`: shapes, ranges and scheduler windows vs the train loop."""

from __future__ import annotations

from typing import Any

from engine.suggest import did_you_mean

_CLIP_KEYS = {"norm": {"type", "max_norm", "norm_type", "error_if_nonfinite"}, "value": {"type", "clip_value"}}
_SCALER_KEYS = {"init_scale", "growth_factor", "backoff_factor", "growth_interval", "enabled"}


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def optim_wrapper_problems(cfg: dict[str, Any], warnings: list[str]) -> list[str]:
    """Problems in `optim_wrapper` (its key types were already checked against the schema)."""
    from engine.optim.constructors import paramwise_problems

    ow = cfg["optim_wrapper"]
    problems = []
    if ow["accumulative_counts"] < 1:
        problems.append(f"optim_wrapper.accumulative_counts: must be at least 1, got {ow['accumulative_counts']}")
    if ow["dtype"] is not None and ow["type"] != "AmpOptimWrapper":
        problems.append(f"optim_wrapper.dtype: {ow['dtype']!r} needs optim_wrapper.type: AmpOptimWrapper "
                        f"(it is {ow['type']})")
    problems += _clip_problems(ow["clip_grad"])
    problems += _loss_scale_problems(ow["loss_scale"])
    optim_kwargs = {k: v for k, v in cfg["optim"].items() if k != "type"}
    problems += paramwise_problems(ow["paramwise_cfg"], optim_kwargs, ow["constructor"])
    return problems


def _clip_problems(clip: dict[str, Any] | None) -> list[str]:
    if clip is None:
        return []
    kind = clip.get("type", "norm")
    if not isinstance(kind, str) or kind not in _CLIP_KEYS:
        return [f"optim_wrapper.clip_grad.type: {kind!r} is not allowed; choose norm or value"]
    problems = []
    for key in clip:
        if key not in _CLIP_KEYS[kind]:
            hint = did_you_mean(key, sorted(_CLIP_KEYS[kind]))
            problems.append(f"optim_wrapper.clip_grad.{key}: unknown key{hint}; clipping by {kind} accepts "
                            f"{', '.join(sorted(_CLIP_KEYS[kind]))}")
    needed = "max_norm" if kind == "norm" else "clip_value"
    if needed not in clip:
        problems.append(f"optim_wrapper.clip_grad.{needed}: required when clipping by {kind}")
    elif not _num(clip[needed]) or clip[needed] <= 0:
        problems.append(f"optim_wrapper.clip_grad.{needed}: must be a positive number, got {clip[needed]!r}")
    if "norm_type" in clip and not (_num(clip["norm_type"]) or clip["norm_type"] in ("inf", float("inf"))):
        problems.append(f"optim_wrapper.clip_grad.norm_type: must be a number (2 = Euclidean) or inf, "
                        f"got {clip['norm_type']!r}")
    return problems


def _loss_scale_problems(scale: Any) -> list[str]:
    if scale == "dynamic" or (_num(scale) and scale > 0):
        return []
    if isinstance(scale, dict):
        unknown = sorted(set(scale) - _SCALER_KEYS)
        if unknown:
            return [f"optim_wrapper.loss_scale.{unknown[0]}: unknown GradScaler argument; accepted: "
                    f"{', '.join(sorted(_SCALER_KEYS))}"]
        return []
    return [f"optim_wrapper.loss_scale: must be 'dynamic', a positive number or a dict of GradScaler arguments, "
            f"got {scale!r}"]


class _DummyOptimizer:
    """Just enough of an optimizer for a dry build of the schedulers during validation."""

    def __init__(self, optim: dict[str, Any]) -> None:
        group = {k: v for k, v in optim.items() if k != "type"}
        group.setdefault("momentum", 0.9) if "betas" not in group else None
        self.param_groups = [group]
        self.defaults = dict(group)


def scheduler_problems(cfg: dict[str, Any], warnings: list[str], build: bool = True) -> list[str]:
    """Each scheduler: known type and arguments, a window inside the train loop, buildable; gaps become warnings.

    `build=False` skips the trial build (for when `optim`, which the build reads, has problems of its own).
    """
    from engine.optim.schedulers import SCHEDULERS, build_scheduler, resolve_by_epoch, scheduler_kwargs

    train = cfg["train_cfg"]
    loop_by_epoch = train["type"] == "EpochBasedTrainLoop"
    problems: list[str] = []
    windows: list[tuple[int, int, bool]] = []
    entries = cfg["param_scheduler"]
    for i, entry in enumerate(entries):
        path = f"param_scheduler.{i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            problems.append(f"{path}: must be a mapping with a `type` key, got {entry!r}")
            continue
        name = entry["type"]
        if name not in SCHEDULERS:
            hint = did_you_mean(name, sorted(SCHEDULERS))
            problems.append(f"{path}.type: unknown scheduler {name!r}{hint}; "
                            f"available: {', '.join(sorted(SCHEDULERS))}")
            continue
        accepted = scheduler_kwargs(name)
        bad = [k for k in entry if k not in accepted]
        for key in bad:
            hint = did_you_mean(key, sorted(accepted))
            problems.append(f"{path}.{key}: {name} has no argument {key!r}{hint}; "
                            f"it accepts {', '.join(sorted(accepted))}")
        if bad:
            continue
        by_epoch = resolve_by_epoch(entry, loop_by_epoch)
        found = _window_problems(entry, path, train, loop_by_epoch, by_epoch, windows)
        problems += found
        if build and not found:
            try:
                build_scheduler(entry, _DummyOptimizer(cfg["optim"]), default_by_epoch=loop_by_epoch,
                                epoch_length=1, max_end=_max_end(train, by_epoch))
            except (ValueError, TypeError, KeyError) as exc:
                problems.append(f"{path}: {exc}")
    warnings += _gap_warnings(windows)
    return problems


def _max_end(train: dict[str, Any], by_epoch: bool) -> int:
    return train["max_epochs"] if by_epoch else train["max_iters"]


def _window_problems(entry: dict[str, Any], path: str, train: dict[str, Any], loop_by_epoch: bool, by_epoch: Any,
                     windows: list[tuple[int, int, bool]]) -> list[str]:
    if not isinstance(by_epoch, bool):
        return [f"{path}.by_epoch: must be true or false, got {by_epoch!r}"]
    needs_val = entry["type"].startswith("ReduceOnPlateau")  # steps after validation, whatever the loop
    if by_epoch and not loop_by_epoch and not entry.get("convert_to_iter_based", False) and not needs_val:
        return [f"{path}.by_epoch: true in an IterBasedTrainLoop would change the value only once, after the whole "
                f"run; remove it (schedulers follow the loop's kind) or set by_epoch: false"]
    unit, limit_key = ("epochs", "max_epochs") if by_epoch else ("iterations", "max_iters")
    limit = train[limit_key]
    begin, end = entry.get("begin", 0), entry.get("end", limit)
    if not _num(begin) or not _num(end):
        return [f"{path}: begin/end must be numbers, got begin={begin!r}, end={end!r}"]
    problems = []
    if begin < 0:
        problems.append(f"{path}.begin: must be 0 or more, got {begin}")
    if end <= begin:
        problems.append(f"{path}.end: must be greater than begin ({begin}), got {end}")
    if isinstance(limit, int) and limit >= 1 and end > limit and not entry.get("convert_to_iter_based", False):
        problems.append(f"{path}.end: {end} {unit} is beyond train_cfg.{limit_key} = {limit}; set "
                        f"{path}.end <= {limit} or raise train_cfg.{limit_key}")
    windows.append((begin, end, by_epoch))
    return problems


def _gap_warnings(windows: list[tuple[int, int, bool]]) -> list[str]:
    """Windows of the same unit that leave steps uncovered between them: usually a typo in begin/end."""
    warnings = []
    for by_epoch in (False, True):
        spans = sorted((b, e) for b, e, be in windows if be == by_epoch)
        covered = spans[0][1] if spans else 0
        for begin, end in spans[1:]:
            if begin > covered:
                unit = "epochs" if by_epoch else "iterations"
                warnings.append(f"param_scheduler: no scheduler covers {unit} {covered}-{begin - 1}; the value stays "
                                f"where the previous scheduler left it")
            covered = max(covered, end)
    return warnings
