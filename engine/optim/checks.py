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


def scheduler_problems(cfg: dict[str, Any], warnings: list[str], build: bool = True,
                       epoch_length: int | None = None) -> list[str]:
    """Each scheduler: known type and arguments, a window inside the train loop, buildable; gaps become warnings.

    `build=False` skips the trial build (for when `optim`, which the build reads, has problems of its own).
    `epoch_length` is train iterations per epoch when the training data is there (else None): with it, windows
    converted to iterations and iteration windows in an epoch loop are checked in iterations, exactly as the
    build will see them. Without it they are checked in the units that are known, and the trial build uses one
    iteration per epoch, which refuses nothing a longer epoch would accept; the train stage checks again once the
    data exists.
    """
    from engine.optim.schedulers import (
        SCHEDULERS,
        build_scheduler,
        entry_problem,
        resolve_by_epoch,
        scheduler_kwargs,
        training_end,
    )

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
        found = _window_problems(entry, path, train, loop_by_epoch, by_epoch, epoch_length, windows)
        problems += found
        if build and not found:
            trial_length = epoch_length or 1
            try:
                build_scheduler(entry, _DummyOptimizer(cfg["optim"]), default_by_epoch=loop_by_epoch,
                                epoch_length=trial_length,
                                max_end=training_end(train, by_epoch=by_epoch, epoch_length=trial_length))
            except (ValueError, TypeError, KeyError) as exc:
                problems.append(entry_problem(path, exc))
    warnings += _gap_warnings(windows)
    return problems


def _window_problems(entry: dict[str, Any], path: str, train: dict[str, Any], loop_by_epoch: bool, by_epoch: Any,
                     epoch_length: int | None, windows: list[tuple[int, int, bool]]) -> list[str]:
    from engine.optim.schedulers import training_end

    if not isinstance(by_epoch, bool):
        return [f"{path}.by_epoch: must be true or false, got {by_epoch!r}"]
    convert = entry.get("convert_to_iter_based", False) is True  # a non-bool is refused by the trial build
    needs_val = entry["type"].startswith("ReduceOnPlateau")  # steps after validation, whatever the loop
    if by_epoch and not loop_by_epoch and not convert and not needs_val:
        return [f"{path}.by_epoch: true in an IterBasedTrainLoop would change the value only once, after the whole "
                f"run; remove it (schedulers follow the loop's kind) or set by_epoch: false"]
    begin, end = entry.get("begin", 0), entry.get("end")
    explicit = end is not None
    if not explicit:
        end = training_end(train, by_epoch=by_epoch, epoch_length=epoch_length)
    if not _num(begin) or (end is not None and not _num(end)):
        return [f"{path}: begin/end must be numbers, got begin={begin!r}, end={entry.get('end')!r}"]
    problems = []
    if begin < 0:
        problems.append(f"{path}.begin: must be 0 or more, got {begin}")
    if end is None:  # runs to the end of training, whose length in this unit needs the data
        return problems
    if end <= begin:
        what = end if explicit else f"{end} (the end of training, its default)"
        problems.append(f"{path}.end: must be greater than begin ({begin}), got {what}")
    if explicit:
        problems += _beyond_training(path, end, train, loop_by_epoch, by_epoch, convert, epoch_length)
    if convert and epoch_length is not None:  # in the unit it will run in
        windows.append((begin * epoch_length, end * epoch_length, False))
    else:
        windows.append((begin, end, by_epoch))
    return problems


def _beyond_training(path: str, end: Any, train: dict[str, Any], loop_by_epoch: bool, by_epoch: bool,
                     convert: bool, epoch_length: int | None) -> list[str]:
    """An explicit `end` past the end of training, compared in the unit the entry will run in."""
    if loop_by_epoch and (by_epoch or epoch_length is None):
        # Epoch counts compare directly (a converted window scales with the run); iterations need the data.
        if not by_epoch:
            return []
        limit, unit, key, shown = train["max_epochs"], "epochs", "max_epochs", end
    elif loop_by_epoch:
        limit = train["max_epochs"] * epoch_length
        return ([] if end <= limit else
                [f"{path}.end: {end} iterations is beyond the end of training (train_cfg.max_epochs = "
                 f"{train['max_epochs']} epochs of {epoch_length} iterations = {limit}); set {path}.end <= {limit} "
                 f"or raise train_cfg.max_epochs"])
    elif by_epoch and not convert:  # ReduceOnPlateau in an iteration loop: counts epochs of the data
        return []
    elif convert:
        if epoch_length is None:
            return []
        limit, unit, key, shown = train["max_iters"], "iterations", "max_iters", end * epoch_length
        if shown > limit:
            return [f"{path}.end: {end} epochs = {shown} iterations (convert_to_iter_based, {epoch_length} per "
                    f"epoch) is beyond train_cfg.max_iters = {limit}; set {path}.end <= {limit // epoch_length} or "
                    f"raise train_cfg.max_iters"]
        return []
    else:
        limit, unit, key, shown = train["max_iters"], "iterations", "max_iters", end
    if isinstance(limit, int) and limit >= 1 and shown > limit:
        return [f"{path}.end: {end} {unit} is beyond train_cfg.{key} = {limit}; set {path}.end <= {limit} or raise "
                f"train_cfg.{key}"]
    return []


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
