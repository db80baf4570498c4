"""Hook registration: priorities (int / name / enum), FIFO ties, default and custom hooks, misnamed methods."""

from pathlib import Path
from typing import Any

import pytest

from engine.hooks.hook import Hook, Priority, get_priority
from tests.engine.fixtures import OrderProbe, PathHook, make_cfg, make_runner


@pytest.fixture
def runner(tmp_path: Path) -> Any:
    return make_runner(make_cfg({"train_cfg": {"max_iters": 1}}), tmp_path)


def _names(runner: Any) -> list[str]:
    return [type(h).__name__ for h in runner.hooks]


# ---------------------------------------------------------------------------------------------------------------
# priorities


@pytest.mark.parametrize(("value", "expected"), [
    (0, 0), (100, 100), (37, 37),
    ("HIGHEST", 0), ("very_high", 10), ("High", 30), ("ABOVE_NORMAL", 40), ("normal", 50),
    ("BELOW_NORMAL", 60), ("low", 70), ("VERY_LOW", 90), ("lowest", 100),
    (Priority.VERY_HIGH, 10), (Priority.LOWEST, 100),
])
def test_priority_accepts_int_name_and_enum(value: Any, expected: int) -> None:
    assert get_priority(value) == expected
    assert type(get_priority(value)) is int


@pytest.mark.parametrize("value", [-1, 101, "medium", True, 1.5, None])
def test_priority_rejects_other_values(value: Any) -> None:
    with pytest.raises(ValueError, match="priority"):
        get_priority(value)


def test_lower_priority_runs_first_at_every_event(runner: Any) -> None:
    log: list[str] = []
    runner.register_hook(OrderProbe("lowest", log), "LOWEST")
    runner.register_hook(OrderProbe("normal", log))  # class default: NORMAL
    runner.register_hook(OrderProbe("highest", log), Priority.HIGHEST)
    runner.register_hook(OrderProbe("p45", log), 45)
    runner.train()
    # after-events are not reversed (MMEngine): the same order before and after the step.
    assert log == ["before:highest", "before:p45", "before:normal", "before:lowest",
                   "after:highest", "after:p45", "after:normal", "after:lowest"]


def test_equal_priorities_keep_registration_order(runner: Any) -> None:
    log: list[str] = []
    for label in ("a", "b", "c"):
        runner.register_hook(OrderProbe(label, log), "NORMAL")
    runner.register_hook(OrderProbe("first", log), 49)
    runner.register_hook(OrderProbe("d", log), 50)
    runner.train()
    assert log[:5] == ["before:first", "before:a", "before:b", "before:c", "before:d"]
    # Among the built-in hooks DistSamplerSeedHook (50, registered first) precedes all of them.
    hooks = [(type(h).__name__, getattr(h, "label", None), h.priority) for h in runner.hooks]
    assert [x for x in hooks if x[2] == 50] == [
        ("DistSamplerSeedHook", None, 50), ("OrderProbe", "a", 50),
        ("OrderProbe", "b", 50), ("OrderProbe", "c", 50), ("OrderProbe", "d", 50)]


def test_explicit_priority_overrides_class_attribute_and_is_normalised(runner: Any) -> None:
    hook = PathHook()
    assert hook.priority == Priority.LOW
    runner.register_hook(hook, "highest")
    assert hook.priority == 0 and runner.hooks[0] is hook


def test_invalid_priority_at_registration_raises(runner: Any) -> None:
    with pytest.raises(ValueError, match="priority must be between 0 and 100, got 250"):
        runner.register_hook(PathHook(), 250)


# ---------------------------------------------------------------------------------------------------------------
# default and custom hooks from the config


def test_default_hooks_order_and_priorities(runner: Any) -> None:
    assert [(type(h).__name__, h.priority) for h in runner.hooks] == [
        ("DistSamplerSeedHook", 50), ("LoggerHook", 60), ("ParamSchedulerHook", 70),
        ("CheckpointHook", 90)]


def test_default_hook_removed_by_null_and_replaced_by_cfg(tmp_path: Path) -> None:
    cfg = make_cfg({"default_hooks": {"sampler_seed": None, "logger": {"type": "LoggerHook", "interval": 3}}})
    runner = make_runner(cfg, tmp_path)
    assert _names(runner) == ["LoggerHook", "ParamSchedulerHook", "CheckpointHook"]
    assert runner.hooks[0].interval == 3


def test_default_hook_priority_from_cfg(tmp_path: Path) -> None:
    cfg = make_cfg({"default_hooks": {"checkpoint": {"priority": "HIGHEST"}}})
    runner = make_runner(cfg, tmp_path)
    assert _names(runner)[0] == "CheckpointHook" and runner.hooks[0].priority == 0


def test_custom_hook_by_dotted_path_with_cfg_priority(tmp_path: Path) -> None:
    cfg = make_cfg({"custom_hooks": [
        {"type": "tests.engine.fixtures.PathHook", "tag": "from-cfg", "priority": "HIGH"},
        {"type": "tests.engine.fixtures.PathHook", "tag": "class-priority"},
    ], "train_cfg": {"max_iters": 2, "val_interval": 2}})
    runner = make_runner(cfg, tmp_path)
    hooks = [h for h in runner.hooks if isinstance(h, PathHook)]
    assert [(h.tag, h.priority) for h in hooks] == [("from-cfg", 30), ("class-priority", 70)]
    # cfg priority 30 puts it before every default hook; the class attribute LOW (70) after ParamSchedulerHook,
    # since custom hooks are registered after the defaults.
    assert _names(runner) == ["PathHook", "DistSamplerSeedHook", "LoggerHook",
                              "ParamSchedulerHook", "PathHook", "CheckpointHook"]
    runner.train()
    assert hooks[0].seen_iters == hooks[1].seen_iters == [0, 1]


def test_hook_order_table(runner: Any) -> None:
    runner.register_hook(PathHook(), 45)
    assert runner.hook_order().splitlines() == [
        "before_run               LoggerHook(60)",
        "after_load_checkpoint    LoggerHook(60)",
        "before_train_epoch       DistSamplerSeedHook(50)",
        "after_train_iter         PathHook(45), LoggerHook(60), ParamSchedulerHook(70), CheckpointHook(90)",
        "after_train_epoch        ParamSchedulerHook(70), CheckpointHook(90)",
        "after_val_epoch          LoggerHook(60), ParamSchedulerHook(70), CheckpointHook(90)",
        "after_train              CheckpointHook(90)",
        "after_test_epoch         LoggerHook(60)",
        "after_run                CheckpointHook(90)",
    ]


# ---------------------------------------------------------------------------------------------------------------
# misnamed methods and wrong signatures fail at registration, not silently at run time


class _IterationTypo(Hook):
    def after_train_iteration(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        pass


class _PrefixTypo(Hook):
    def befor_run(self, runner: Any) -> None:
        pass


class _Helpers(Hook):
    """Public helper methods that do not look like events are fine."""

    def flush(self) -> None:
        pass

    def reset_counters(self) -> None:
        pass

    def before_run(self, runner: Any, **kwargs: Any) -> None:
        pass


@pytest.mark.parametrize(("cls", "method", "guess"), [
    (_IterationTypo, "after_train_iteration", "after_train_iter"),
    (_PrefixTypo, "befor_run", "before_run"),
])
def test_misnamed_method_raises_with_did_you_mean(runner: Any, cls: type, method: str, guess: str) -> None:
    with pytest.raises(TypeError) as info:
        runner.register_hook(cls())
    message = str(info.value)
    assert f"{cls.__name__}.{method} is not a hook event" in message
    assert f"did you mean {guess!r}?" in message
    assert cls not in [type(h) for h in runner.hooks]


class _MissingArgs(Hook):
    def after_train_iter(self, runner: Any) -> None:
        pass


class _ExtraRequired(Hook):
    def before_train(self, runner: Any, extra: int) -> None:
        pass


class _NoRunner(Hook):
    def after_run(self) -> None:
        pass


class _MetricsMissing(Hook):
    def after_val_epoch(self, runner: Any) -> None:
        pass


@pytest.mark.parametrize(("cls", "expected"), [
    (_MissingArgs, "_MissingArgs.after_train_iter must accept (runner, batch_idx, data_batch, outputs)"),
    (_ExtraRequired, "_ExtraRequired.before_train must accept (runner)"),
    (_NoRunner, "_NoRunner.after_run must accept (runner)"),
    (_MetricsMissing, "_MetricsMissing.after_val_epoch must accept (runner, metrics)"),
])
def test_wrong_signature_raises_at_registration(runner: Any, cls: type, expected: str) -> None:
    with pytest.raises(TypeError) as info:
        runner.register_hook(cls())
    assert expected in str(info.value)


def test_helpers_and_var_kwargs_are_accepted(runner: Any) -> None:
    hook = _Helpers()
    runner.register_hook(hook)
    assert "before_run               _Helpers(50), LoggerHook(60)" in runner.hook_order().splitlines()


def test_a_hook_class_without_priority_registers_at_normal(runner: Any) -> None:
    """A user's hook need not subclass Hook: without a `priority` attribute it gets NORMAL, as in MMEngine."""

    class Plain:
        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            pass

    hook = Plain()
    runner.register_hook(hook)  # type: ignore[arg-type]
    assert hook.priority == Priority.NORMAL  # type: ignore[attr-defined]
    assert "Plain(50)" in runner.hook_order()
