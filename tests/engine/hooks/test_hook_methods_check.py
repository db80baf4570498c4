"""`trainline check` refuses a configured hook that registration would refuse (a method named like no event, or one
the event cannot call), naming the key path: exit 2, one line, no traceback, before anything is built."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.hooks.hook import Hook

HERE = "tests.engine.hooks.test_hook_methods_check"


class TypoHook(Hook):
    def after_train_iteration(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        pass


class NoMetricsHook(Hook):
    def after_val_epoch(self, runner: Any) -> None:
        pass


CASES = [
    ({"custom_hooks": [{"type": f"{HERE}.TypoHook"}]},
     "error: custom_hooks.0.type: TypoHook.after_train_iteration is not a hook event, so it would never be called; "
     "did you mean 'after_train_iter'?"),
    ({"custom_hooks": [{"type": "EmptyCacheHook"}, {"type": f"{HERE}.NoMetricsHook", "priority": "LOW"}]},
     "error: custom_hooks.1.type: NoMetricsHook.after_val_epoch must accept (runner, metrics) as the runner calls it"),
]


@pytest.mark.parametrize(("overrides", "line"), CASES)
def test_check_refuses_hooks_registration_would_refuse(write_params: Callable[..., Path], overrides: dict[str, Any],
                                                       line: str) -> None:
    result = CliRunner().invoke(main, ["check", "--params", str(write_params(overrides))])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(line), result.stderr
