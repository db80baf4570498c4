"""Bind and call one configured component (`type:` + kwargs): the values the engine offers, signature checks, and
the component's own refusals turned into problems that name the params.yaml key."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from engine.errors import ConfigError
from engine.suggest import did_you_mean

# Where an offered value comes from: named in messages so a user knows which key to edit instead.
OFFER_SOURCES = {"num_classes": "data.classes", "classes": "data.classes", "root": "data.root", "seed": "seed",
                 "split": "the engine (train, val or test)"}
# What each kind of component may be offered (only the names its signature asks for are passed).
OFFERS_BY_KIND = {
    "model": ("num_classes", "classes"),
    "evaluator": ("num_classes", "classes"),
    "dataset": ("root", "split", "seed", "classes", "num_classes"),
    "prepare": ("root", "seed", "classes"),
}
# Exceptions a constructor raises for values it refuses; anything else is a bug and keeps its traceback.
REFUSALS = (ValueError, TypeError, AssertionError, KeyError, IndexError, LookupError)


def offers(cfg: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The values the engine can give a `kind` component under `cfg` (a name absent here is not available)."""
    section = cfg.get("data")
    data: dict[str, Any] = section if isinstance(section, dict) else {}
    available: dict[str, Any] = {"seed": cfg.get("seed"), "root": data.get("root")}
    classes = data.get("classes")
    if isinstance(classes, list):
        available.update(classes=list(classes), num_classes=len(classes))
    return {k: available[k] for k in OFFERS_BY_KIND.get(kind, ()) if k in available}


def parameters(target: Any) -> Mapping[str, inspect.Parameter] | None:
    """The signature's parameters, or None when it cannot be read (builtins implemented in C)."""
    try:
        return inspect.signature(target).parameters
    except (TypeError, ValueError):
        return None


def bound_kwargs(target: Any, kwargs: dict[str, Any], offered: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` plus the offered values `target`'s signature names (a `**kwargs` catch-all is offered nothing but
    `split`, which a dataset always needs)."""
    params = parameters(target)
    out = dict(kwargs)
    for name, value in offered.items():
        if name in out:
            continue
        if params is None or name in params or (name == "split" and _takes_var_kw(params)):
            out[name] = value
    return out


def _takes_var_kw(params: Mapping[str, inspect.Parameter]) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in params.values())


def kwargs_problems(target: Any, kwargs: dict[str, Any], path: str, *, offered: Mapping[str, Any] | None = None,
                    offerable: tuple[str, ...] = (), engine_owned: frozenset[str] | set[str] = frozenset(),
                    needs: tuple[str, ...] = ()) -> list[str]:
    """Bind `kwargs` against `target`'s signature: unknown names (with did-you-mean), values the engine provides,
    missing required ones, arguments the engine must pass but the signature lacks (`needs`), and values that
    contradict a plain `int`/`float`/`bool`/`str` annotation."""
    params = parameters(target)
    if params is None:
        return []
    offered = offered or {}
    name_of = getattr(target, "__name__", type(target).__name__)
    var_kw = _takes_var_kw(params)
    names = [n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    accepted = [n for n in names if n not in engine_owned and n not in offered]
    problems = []
    for key in kwargs:
        if key in engine_owned:
            problems.append(f"{path}.{key}: set by the engine, remove it")
        elif key in offered and (key in params or var_kw):
            problems.append(f"{path}.{key}: also given by {OFFER_SOURCES.get(key, 'the engine')} "
                            f"({_short(offered[key])}); keep one of the two")
        elif key not in params and not var_kw:
            problems.append(f"{path}.{key}: {name_of} has no argument {key!r}{did_you_mean(key, accepted)}; "
                            f"it accepts {', '.join(accepted) or 'no arguments'}")
        elif key in params:
            problem = annotation_problem(params[key], kwargs[key])
            if problem:
                problems.append(f"{path}.{key}: {problem}")
    for name, param in params.items():
        required = param.default is param.empty and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
        if not required or name in kwargs or name in offered or name in engine_owned:
            continue
        if name in offerable:
            problems.append(f"{path}.{name}: required by {name_of}; set it here or set "
                            f"{OFFER_SOURCES[name]} (it is then offered)")
        else:
            problems.append(f"{path}.{name}: required by {name_of} but missing")
    for name in needs:
        if name not in params and not var_kw:
            problems.append(f"{path}.type: {name_of} must accept a {name!r} argument (the engine passes "
                            f"{name}= from {OFFER_SOURCES.get(name, 'the engine')})")
    return problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def call(target: Any, kwargs: dict[str, Any], path: str) -> Any:
    """`target(**kwargs)`; a value it refuses becomes a ConfigError naming `path` (and the argument, when the
    message names exactly one)."""
    try:
        return target(**kwargs)
    except REFUSALS as exc:
        raise ConfigError([refusal(target, kwargs, path, exc)]) from None


def refusal(target: Any, kwargs: dict[str, Any], path: str, exc: BaseException) -> str:
    """`<path>.<key>: X refuses <value> (<reason>)` when the reason names exactly one argument, else
    `<path>: X refuses these arguments (<reason>)`."""
    name_of = getattr(target, "__name__", type(target).__name__)
    reason = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
    named = [k for k in kwargs if k in str(exc)]
    if len(named) == 1:
        return f"{path}.{named[0]}: {name_of} refuses {_short(kwargs[named[0]])} ({reason})"
    got = ", ".join(f"{k}={_short(v)}" for k, v in kwargs.items())
    return f"{path}: {name_of} refuses these arguments ({reason}); got {got or 'none'}"


# -- values against plain annotations -------------------------------------------------------------------------------
_PLAIN = {"int": int, "float": float, "bool": bool, "str": str}


def type_ok(value: Any, types: tuple[type, ...]) -> bool:
    """isinstance, except that a bool is not an int."""
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def type_name(types: tuple[type, ...]) -> str:
    """`an integer or null`, ... for messages."""
    if float in types:
        types = tuple(t for t in types if t is not int)  # "an integer or a number" says no more than "a number"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", list: "a list",
             dict: "a mapping", type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def quotes_hint(value: Any, types: tuple[type, ...]) -> str:
    """For a quoted number where a number belongs ('16', '6e-5'): how to fix it."""
    if not isinstance(value, str) or not ({int, float} & set(types)):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    return " (remove the quotes to make it a number)"


def annotation_problem(param: inspect.Parameter, value: Any) -> str | None:
    """What is wrong with `value` for a parameter annotated `int`/`float`/`bool`/`str`, or None."""
    annotation = param.annotation
    if isinstance(annotation, str):  # postponed annotations
        annotation = _PLAIN.get(annotation)
    if annotation not in (int, float, bool, str) or (value is None and param.default is None):
        return None
    if type_ok(value, (int, float) if annotation is float else (annotation,)):
        return None
    return f"must be {type_name((annotation,))}, got {value!r}{quotes_hint(value, (annotation,))}"
