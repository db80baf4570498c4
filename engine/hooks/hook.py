"""Base class of hooks, priorities, and the checks that make a misnamed hook method an error at registration."""

from __future__ import annotations

import inspect
from enum import IntEnum
from typing import Any

from engine.events import EVENT_NAMES


class Priority(IntEnum):
    """Hook priorities as in MMEngine: lower runs first at every event; equal priorities keep registration order."""

    HIGHEST = 0
    VERY_HIGH = 10
    HIGH = 30
    ABOVE_NORMAL = 40
    NORMAL = 50
    BELOW_NORMAL = 60
    LOW = 70
    VERY_LOW = 90
    LOWEST = 100


def priority_problem(value: Any) -> str | None:
    """Why `value` is not a valid priority, or None."""
    if isinstance(value, bool):
        return f"must be an integer 0-100 or one of {', '.join(Priority.__members__)}, got {value!r}"
    if isinstance(value, int):
        return None if 0 <= value <= 100 else f"must be between 0 and 100, got {value}"
    if isinstance(value, str) and value.upper() in Priority.__members__:
        return None
    return f"must be an integer 0-100 or one of {', '.join(Priority.__members__)}, got {value!r}"


def get_priority(value: int | str | Priority) -> int:
    """Normalise a priority given as int, name (case-insensitive) or Priority."""
    problem = priority_problem(value)
    if problem:
        raise ValueError(f"priority {problem}")
    return int(value) if isinstance(value, int) else int(Priority[str(value).upper()])


# Arguments each event passes, by keyword; a hook method must accept them (checked at registration).
_ITER_ARGS = ("batch_idx", "data_batch")
EVENT_ARGS: dict[str, tuple[str, ...]] = {name: () for name in EVENT_NAMES}
EVENT_ARGS.update({
    "before_train_iter": _ITER_ARGS, "before_val_iter": _ITER_ARGS, "before_test_iter": _ITER_ARGS,
    "after_train_iter": _ITER_ARGS + ("outputs",), "after_val_iter": _ITER_ARGS + ("outputs",),
    "after_test_iter": _ITER_ARGS + ("outputs",),
    "after_val_epoch": ("metrics",), "after_test_epoch": ("metrics",),
    "before_save_checkpoint": ("checkpoint",), "after_load_checkpoint": ("checkpoint",),
    "on_exception": ("exc",),
})
_EVENT_PREFIXES = ("before_", "after_", "on_")


class Hook:
    """A hook handles any of the events in `engine.events.Event` by defining a method of that exact name.

    Every event method receives the runner first, then the event's keyword arguments (see EVENT_ARGS). Hooks use the
    runner's public surface only: `cfg`, `model`, `optim_wrapper`, `accelerator`, `state`, `logger`, `work_dir`,
    `train_loop`, `log_scalars`, `schedulers`.
    """

    priority: int | str = Priority.NORMAL

    def state_dict(self) -> dict[str, Any]:
        """State to keep in checkpoints (override in stateful hooks)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


def _misnamed_event(name: str) -> str | None:
    """The event `name` was probably meant to be (a typo or wrong suffix), or None if it does not look like one."""
    import difflib

    if name.startswith(_EVENT_PREFIXES):
        # A real prefix with an unknown rest (`after_train_iteration`): always an error; suggest the closest event,
        # preferring those with the same prefix.
        prefix = name.split("_", 1)[0] + "_"
        same_prefix = [e for e in EVENT_NAMES if e.startswith(prefix)]
        guess = difflib.get_close_matches(name, same_prefix, n=1, cutoff=0.5) or difflib.get_close_matches(
            name, EVENT_NAMES, n=1, cutoff=0.5)
        return guess[0] if guess else ""
    # Any other public method is a helper unless it is a near-miss of an event name (`befor_run`, `aftertrain`).
    guess = difflib.get_close_matches(name, EVENT_NAMES, n=1, cutoff=0.8)
    return guess[0] if guess else None


def handled_events(hook: Hook) -> list[str]:
    """Events `hook` defines a method for, after checking that every event-like method name is a real event and
    that each event method can be called with the runner and the event's keyword arguments."""
    events = []
    for name in dir(type(hook)):
        if name.startswith("_") or name in vars(Hook) or not callable(getattr(hook, name)):
            continue
        if name not in EVENT_ARGS:
            guess = _misnamed_event(name)
            if guess is None:
                continue
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise TypeError(f"{type(hook).__name__}.{name} is not a hook event, so it would never be called{hint}")
        method = getattr(hook, name)
        try:
            inspect.signature(method).bind(None, **dict.fromkeys(EVENT_ARGS[name]))
        except TypeError as exc:
            raise TypeError(f"{type(hook).__name__}.{name} must accept (runner"
                            f"{''.join(', ' + a for a in EVENT_ARGS[name])}) as the runner calls it: {exc}") from None
        events.append(name)
    return events
