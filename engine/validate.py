"""Check a params config before any heavy work: every problem at once, each naming its params.yaml key path."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from engine.config import merge
from engine.errors import ConfigError
from engine.resolve import resolve_type
from engine.schema import KEYS, OPEN_SECTIONS, SECTIONS, defaults

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


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
             dict: "a mapping", type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """The full config: defaults merged under the user's values; `null` in default_hooks removes that hook."""
    cfg = merge(raw, defaults())
    cfg["default_hooks"] = {k: v for k, v in cfg["default_hooks"].items() if v is not None}
    return cfg


def check_params(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Validate `raw` (a loaded params.yaml); return (resolved config, warnings) or raise ConfigError listing all."""
    problems: list[str] = []
    warnings: list[str] = []
    for section in raw:
        if section not in SECTIONS and section != "_base_":
            problems.append(f"{section}: unknown section{_did_you_mean(section, list(SECTIONS))}; "
                            f"sections are {', '.join(SECTIONS)}")
    _check_closed(raw, "", problems)
    cfg = resolve({k: v for k, v in raw.items() if k in SECTIONS})
    _check_plain_types(cfg, problems)
    if problems:  # later checks assume the basic shapes are right
        raise ConfigError(problems)
    _check_data(cfg, problems)
    _check_typed(cfg["model"], "model", "model", problems)
    _check_typed(cfg["optim"], "optim", "optimizer", problems)
    _check_loops(cfg, problems)
    _check_hooks(cfg, problems)
    from engine.optim.checks import optim_wrapper_problems, scheduler_problems

    problems += optim_wrapper_problems(cfg, warnings)
    problems += scheduler_problems(cfg, warnings)
    if problems:
        raise ConfigError(problems)
    return cfg, warnings


def _check_closed(node: dict[str, Any], prefix: str, problems: list[str]) -> None:
    for key, value in node.items():
        path = f"{prefix}{key}"
        parent = prefix.rstrip(".")
        if parent in _CLOSED_PREFIXES and path not in _BY_PATH and not any(p.startswith(path + ".") for p in _BY_PATH):
            allowed = sorted(p.rsplit(".", 1)[1] for p in _BY_PATH if p.rsplit(".", 1)[0] == parent)
            problems.append(f"{path}: unknown key{_did_you_mean(str(key), allowed)}; {parent} accepts "
                            f"{', '.join(allowed)}")
            continue
        if isinstance(value, dict) and path in _CLOSED_PREFIXES:
            _check_closed(value, path + ".", problems)


def _check_plain_types(cfg: dict[str, Any], problems: list[str]) -> None:
    for key in KEYS:
        node: Any = cfg
        for part in key.path.split("."):
            if not isinstance(node, dict):
                problems.append(f"{key.path.rsplit('.', 1)[0]}: must be a mapping, got {node!r}")
                break
            node = node.get(part)
        else:
            if key.types is not None and not _type_ok(node, key.types):
                hint = ""
                if isinstance(node, str) and float in key.types:
                    hint = " (remove the quotes to make it a number)"
                problems.append(f"{key.path}: must be {_type_name(key.types)}, got {node!r}{hint}")
            elif key.choices is not None and node not in key.choices:
                shown = ", ".join("null" if c is None else str(c) for c in key.choices)
                problems.append(f"{key.path}: {node!r} is not allowed{_did_you_mean(str(node), [str(c) for c in key.choices])}"
                                f"; choose one of: {shown}")


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
    """Bind `kwargs` against `cls`'s signature: unknown names (with did-you-mean), missing required, engine-owned."""
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
            problems.append(f"{path}.{key}: {cls.__name__} has no argument {key!r}{_did_you_mean(key, accepted)}; "
                            f"it accepts {', '.join(accepted) or 'no arguments'}")
    for name, param in params.items():
        required = param.default is param.empty and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
        if required and name not in kwargs and name not in injected:
            problems.append(f"{path}.{name}: required by {cls.__name__} but missing")
    return problems


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


def _check_loops(cfg: dict[str, Any], problems: list[str]) -> None:
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


def _check_hooks(cfg: dict[str, Any], problems: list[str]) -> None:
    from engine.hooks.hook import priority_problem

    entries = [(f"default_hooks.{name}", hook) for name, hook in cfg["default_hooks"].items()]
    if not isinstance(cfg["custom_hooks"], list):
        problems.append("custom_hooks: must be a list of hook configs")
    else:
        entries += [(f"custom_hooks.{i}", hook) for i, hook in enumerate(cfg["custom_hooks"])]
    for path, hook in entries:
        _check_typed(hook, path, "hook", problems, extra=("priority",))
        if isinstance(hook, dict) and "priority" in hook:
            problem = priority_problem(hook["priority"])
            if problem:
                problems.append(f"{path}.priority: {problem}")
