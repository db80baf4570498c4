"""Check a params config before any heavy work: every problem at once, each naming its params.yaml key path."""

from __future__ import annotations

import inspect
import warnings as warnings_module
from typing import Any

from engine.config import merge, strip_delete
from engine.errors import ConfigError
from engine.resolve import resolve_type
from engine.schema import DEFAULT_HOOKS, KEYS, OPEN_SECTIONS, SECTIONS, defaults
from engine.suggest import did_you_mean

_BY_PATH = {k.path: k for k in KEYS}
# Prefixes of KEYS that are themselves mappings with a closed set of keys.
_CLOSED_PREFIXES = {p.rsplit(".", 1)[0] for p in _BY_PATH if "." in p} - set(OPEN_SECTIONS)
# Constructor arguments the engine supplies itself; a user setting them would be overridden silently.
_INJECTED = {
    "model": {"num_classes"},
    "optimizer": {"params"},
    "hook": set(),
    "train_loop": {"runner", "dataloader"},
    "val_loop": {"runner", "dataloader", "evaluator"},
    "test_loop": {"runner", "dataloader", "evaluator"},
}


def _type_name(types: tuple[type, ...]) -> str:
    if float in types:
        types = tuple(t for t in types if t is not int)  # "an integer or a number" says no more than "a number"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
             dict: "a mapping", type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _quotes_hint(value: Any, types: tuple[type, ...]) -> str:
    """For a quoted number where a number belongs ('16', '6e-5'): how to fix it."""
    if not isinstance(value, str) or not ({int, float} & set(types)):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (remove the quotes to make it a number)"


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """The full config: defaults merged under the user's values; `null` in default_hooks removes that hook."""
    cfg = merge(strip_delete(raw), defaults())
    if isinstance(cfg["default_hooks"], dict):  # anything else is reported by check_params
        cfg["default_hooks"] = {k: v for k, v in cfg["default_hooks"].items() if v is not None}
    return cfg


def check_params(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Validate `raw` (a loaded params.yaml); return (resolved config, warnings) or raise ConfigError listing all."""
    problems: list[str] = []
    warnings: list[str] = []
    for section in raw:
        if section not in SECTIONS and section != "_base_":
            problems.append(f"{section}: unknown section{did_you_mean(section, list(SECTIONS))}; "
                            f"sections are {', '.join(SECTIONS)}")
    _check_closed(raw, "", problems)
    _check_default_hook_names(raw.get("default_hooks"), problems, warnings)
    cfg = resolve({k: v for k, v in raw.items() if k in SECTIONS})
    # Later checks assume the basic shapes of the sections they read; sections with a shape problem are skipped
    # so that every other problem is still reported in the same run.
    bad = _check_plain_types(cfg, problems)
    if "data" not in bad:
        _check_data(cfg, problems)
    if "model" not in bad:
        _check_model(cfg["model"], 2 if "data" in bad else len(cfg["data"]["classes"]), problems)
    optim_ok = "optim" not in bad and _check_optimizer(cfg["optim"], problems)
    loops_ok = not bad & {"train_cfg", "val_cfg", "test_cfg"} and _check_loops(cfg, problems)
    if not bad & {"default_hooks", "custom_hooks"}:
        _check_hooks(cfg, problems)
    from engine.optim.checks import optim_wrapper_problems, scheduler_problems

    if not bad & {"optim", "optim_wrapper"}:
        problems += optim_wrapper_problems(cfg, warnings)
    if loops_ok and "param_scheduler" not in bad:
        problems += scheduler_problems(cfg, warnings, build=optim_ok)
    if problems:
        raise ConfigError(problems)
    return cfg, warnings


def _check_closed(node: dict[str, Any], prefix: str, problems: list[str]) -> None:
    for key, value in node.items():
        path = f"{prefix}{key}"
        parent = prefix.rstrip(".")
        if key == "_delete_":
            continue
        if parent in _CLOSED_PREFIXES and path not in _BY_PATH and not any(p.startswith(path + ".") for p in _BY_PATH):
            allowed = sorted(p.rsplit(".", 1)[1] for p in _BY_PATH if p.rsplit(".", 1)[0] == parent)
            problems.append(f"{path}: unknown key{did_you_mean(str(key), allowed)}; {parent} accepts "
                            f"{', '.join(allowed)}")
            continue
        if isinstance(value, dict) and path in _CLOSED_PREFIXES:
            _check_closed(value, path + ".", problems)


def _check_plain_types(cfg: dict[str, Any], problems: list[str]) -> set[str]:
    """Type and choice problems of the KEYS; returns the top-level sections that have any."""
    before = len(problems)
    not_mappings: set[str] = set()
    for key in KEYS:
        node: Any = cfg
        parts = key.path.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict):
                parent = ".".join(parts[:depth])
                if parent not in not_mappings:
                    not_mappings.add(parent)
                    problems.append(f"{parent}: must be a mapping, got {node!r}")
                break
            node = node.get(part)
        else:
            if key.types is not None and not _type_ok(node, key.types):
                hint = _quotes_hint(node, key.types)
                problems.append(f"{key.path}: must be {_type_name(key.types)}, got {node!r}{hint}")
            elif key.choices is not None and node not in key.choices:
                shown = ", ".join("null" if c is None else str(c) for c in key.choices)
                close = did_you_mean(str(node), [str(c) for c in key.choices])
                problems.append(f"{key.path}: {node!r} is not allowed{close}; choose one of: {shown}")
    return {p.split(":", 1)[0].split(".", 1)[0] for p in problems[before:]}


def _check_data(cfg: dict[str, Any], problems: list[str]) -> None:
    data = cfg["data"]
    for name in ("image_size", "num_train", "num_val", "num_test", "batch_size", "val_batch_size", "max_objects"):
        if data[name] < 1:
            problems.append(f"data.{name}: must be at least 1, got {data[name]}")
    if data["num_workers"] < 0:
        problems.append(f"data.num_workers: must be 0 or more, got {data['num_workers']}")
    classes = data["classes"]
    if len(classes) < 2 or not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
        problems.append(f"data.classes: must be at least 2 distinct names (background first), got {classes!r}")


def check_kwargs(cls: type, kwargs: dict[str, Any], path: str, injected: set[str]) -> list[str]:
    """Bind `kwargs` against `cls`'s signature: unknown names (with did-you-mean), missing required, engine-owned,
    and values that contradict a plain `int`/`float`/`bool`/`str` annotation."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return []
    problems = []
    takes_var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    names = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    for key in kwargs:
        if key in injected:
            problems.append(f"{path}.{key}: set by the engine, remove it")
        elif key not in params and not takes_var_kw:
            accepted = [n for n in names if n not in injected]
            problems.append(f"{path}.{key}: {cls.__name__} has no argument {key!r}{did_you_mean(key, accepted)}; "
                            f"it accepts {', '.join(accepted) or 'no arguments'}")
        elif key in params:
            problem = _annotation_problem(params[key], kwargs[key])
            if problem:
                problems.append(f"{path}.{key}: {problem}")
    for name, param in params.items():
        required = param.default is param.empty and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
        if required and name not in kwargs and name not in injected:
            problems.append(f"{path}.{name}: required by {cls.__name__} but missing")
    return problems


_PLAIN = {"int": int, "float": float, "bool": bool, "str": str}


def _annotation_problem(param: inspect.Parameter, value: Any) -> str | None:
    annotation = param.annotation
    if isinstance(annotation, str):  # postponed annotations
        annotation = _PLAIN.get(annotation)
    if annotation not in (int, float, bool, str) or (value is None and param.default is None):
        return None
    ok = _type_ok(value, (int, float) if annotation is float else (annotation,))
    if ok:
        return None
    hint = _quotes_hint(value, (annotation,))
    return f"must be {_type_name((annotation,))}, got {value!r}{hint}"


def _check_typed(node: Any, path: str, kind: str, problems: list[str], extra: tuple[str, ...] = ()) -> type | None:
    if not isinstance(node, dict):
        problems.append(f"{path}: must be a mapping with a `type` key, got {node!r}")
        return None
    try:
        cls = resolve_type(node.get("type"), kind)
    except LookupError as exc:
        problems.append(f"{path}.type: {exc}")
        return None
    kwargs = {k: v for k, v in node.items() if k != "type" and k not in extra}
    problems += check_kwargs(cls, kwargs, path, _INJECTED.get(kind, set()))
    return cls


def _check_model(model: dict[str, Any], num_classes: int, problems: list[str]) -> None:
    """Known model and arguments; a built-in model is then built on the meta device (no memory, no compute) so that
    argument values it refuses (`img_size` not divisible by `patch_size`, ...) surface now, not after data loading."""
    before = len(problems)
    cls = _check_typed(model, "model", "model", problems)
    if cls is None or len(problems) > before:
        return
    from engine.seg.models import MODELS

    if cls not in MODELS.values():  # user models may download weights or do other work in __init__
        return
    import torch

    kwargs = {k: v for k, v in model.items() if k != "type"}
    try:
        with torch.device("meta"), warnings_module.catch_warnings():
            warnings_module.simplefilter("ignore")
            cls(num_classes=num_classes, **kwargs)
    except (ValueError, TypeError, AssertionError) as exc:
        got = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        problems.append(_refusal(cls, kwargs, "model", exc, f"cannot be built from these arguments ({exc}); got {got}"))


def _check_optimizer(optim: dict[str, Any], problems: list[str]) -> bool:
    """Known optimizer and arguments, then a trial construction on one dummy tensor: torch checks the values."""
    before = len(problems)
    cls = _check_typed(optim, "optim", "optimizer", problems)
    if cls is None or len(problems) > before:
        return False
    import torch

    kwargs = {k: v for k, v in optim.items() if k != "type"}
    # Implementation switches depend on the device the real parameters live on, not on a CPU dummy.
    trial = {k: v for k, v in kwargs.items() if k not in _DEVICE_FLAGS}
    try:
        cls([torch.zeros(1, requires_grad=True)], **trial)
    except (ValueError, TypeError, IndexError, KeyError, RuntimeError) as exc:
        text = str(exc)
        named = [k for k in trial if k in text or _TORCH_WORDS.get(k, "\0") in text.lower()]
        if len(named) == 1:
            problems.append(f"optim.{named[0]}: {cls.__name__} refuses {trial[named[0]]!r} ({text})")
        else:
            got = ", ".join(f"{k}={v!r}" for k, v in trial.items())
            problems.append(f"optim: {cls.__name__} refuses these arguments ({text}); got {got}")
        return False
    return True


# How torch's optimizer argument errors name some arguments ("Invalid learning rate: -1.0").
_TORCH_WORDS = {"lr": "learning rate", "eps": "epsilon", "betas": "beta"}
_DEVICE_FLAGS = {"fused", "foreach", "capturable", "differentiable"}


def _check_loops(cfg: dict[str, Any], problems: list[str]) -> bool:
    """The train loop's length and intervals, and every loop's extra keys against its class; True when all fine."""
    from engine.resolve import resolve_type

    before = len(problems)
    train = cfg["train_cfg"]
    by_epoch = train["type"] == "EpochBasedTrainLoop"
    need, other = ("max_epochs", "max_iters") if by_epoch else ("max_iters", "max_epochs")
    if train.get(need) is None:
        problems.append(f"train_cfg.{need}: required by {train['type']}")
    elif train[need] < 1:
        problems.append(f"train_cfg.{need}: must be at least 1, got {train[need]}")
    if train.get(other) is not None:
        problems.append(f"train_cfg.{other}: not used by {train['type']} (set train_cfg.{need} instead)")
    for name in ("val_interval", "val_begin"):
        if train[name] < 1:
            problems.append(f"train_cfg.{name}: must be at least 1, got {train[name]}")
    # Extra keys are the loop's keyword arguments (null ones are left out, as the runner does); the lengths were
    # checked above with clearer messages.
    kwargs = {k: v for k, v in train.items() if k != "type" and v is not None}
    problems += [p for p in check_kwargs(resolve_type(train["type"], "train_loop"), kwargs, "train_cfg",
                                         _INJECTED["train_loop"])
                 if not p.startswith((f"train_cfg.{need}:", f"train_cfg.{other}:"))]
    for section, kind in (("val_cfg", "val_loop"), ("test_cfg", "test_loop")):
        node = cfg[section]
        kwargs = {k: v for k, v in node.items() if k != "type"}
        problems += check_kwargs(resolve_type(node["type"], kind), kwargs, section, _INJECTED[kind])
    return len(problems) == before


def _check_default_hook_names(hooks: Any, problems: list[str], warnings: list[str]) -> None:
    """A misspelt default hook name would silently add a second hook (or, with null, remove nothing)."""
    if not isinstance(hooks, dict):
        return
    names = list(DEFAULT_HOOKS)
    for name, hook in hooks.items():
        if name in DEFAULT_HOOKS:
            continue
        close = did_you_mean(str(name), names)
        if hook is None:
            problems.append(f"default_hooks.{name}: no default hook of that name to remove{close}; default hooks "
                            f"are {', '.join(names)}")
        elif close:
            warnings.append(f"default_hooks.{name}: not a default hook name, so this adds another hook{close}")


def _check_hooks(cfg: dict[str, Any], problems: list[str]) -> None:
    from engine.hooks.hook import priority_problem

    entries = [(f"default_hooks.{name}", hook) for name, hook in cfg["default_hooks"].items()]
    if not isinstance(cfg["custom_hooks"], list):
        problems.append("custom_hooks: must be a list of hook configs")
    else:
        entries += [(f"custom_hooks.{i}", hook) for i, hook in enumerate(cfg["custom_hooks"])]
    for path, hook in entries:
        before = len(problems)
        cls = _check_typed(hook, path, "hook", problems, extra=("priority",))
        if cls is not None and len(problems) == before:
            _try_hook(cls, hook, path, problems)
        if isinstance(hook, dict) and "priority" in hook:
            problem = priority_problem(hook["priority"])
            if problem:
                problems.append(f"{path}.priority: {problem}")
        iter_loop = isinstance(cfg.get("train_cfg"), dict) and cfg["train_cfg"].get("type") == "IterBasedTrainLoop"
        epoch_ckpt = isinstance(hook, dict) and hook.get("type") == "CheckpointHook" and hook.get("by_epoch") is True
        if epoch_ckpt and iter_loop:
            # An iteration loop has no epoch boundaries to save at: such a hook would never write a checkpoint.
            problems.append(f"{path}.by_epoch: true never saves in an IterBasedTrainLoop; remove it (checkpoints "
                            f"follow the loop's kind) or set by_epoch: false")


def _try_hook(cls: type, hook: dict[str, Any], path: str, problems: list[str]) -> None:
    """Construct the hook as the build will (hook constructors are cheap): what it refuses is refused here, with the
    key path, instead of as a traceback once training starts."""
    kwargs = {k: v for k, v in hook.items() if k not in ("type", "priority")}
    try:
        cls(**kwargs)
    except (ValueError, TypeError) as exc:
        problems.append(_refusal(cls, kwargs, path, exc, f"refuses these arguments ({exc})"))


def _refusal(cls: type, kwargs: dict[str, Any], path: str, exc: Exception, otherwise: str) -> str:
    """`<path>.<key>: X refuses <value> (<reason>)` when the reason names exactly one argument, else
    `<path>: X <otherwise>`."""
    named = [k for k in kwargs if k in str(exc)]
    if len(named) == 1:
        return f"{path}.{named[0]}: {cls.__name__} refuses {kwargs[named[0]]!r} ({exc})"
    return f"{path}: {cls.__name__} {otherwise}"
