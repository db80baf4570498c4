"""`trainline check` refuses the new hooks' bad arguments with the key path: exit 2, one line, no traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import main

CASES = [
    ({"custom_hooks": [{"type": "EMAHook", "momentum": 1.5}]},
     "error: custom_hooks.0.momentum: EMAHook refuses 1.5 (momentum must be a number strictly between 0 and 1"),
    ({"custom_hooks": [{"type": "EMAHook"}, {"type": "EMAHook", "begin_iter": -3}]},
     "error: custom_hooks.1.begin_iter: EMAHook refuses -3 (begin_iter must be a whole number >= 0, got -3)"),
    ({"custom_hooks": [{"type": "EmptyCacheHook", "after_iter": "yes"}]},
     "error: custom_hooks.0.after_iter: must be true/false, got 'yes'"),
    ({"custom_hooks": [{"type": "EarlyStoppingHook", "monitor": "score"}]},
     "error: custom_hooks.0.monitor: EarlyStoppingHook refuses 'score' (monitor 'score': cannot tell whether larger "
     "or smaller is better"),
    ({"custom_hooks": [{"type": "EarlyStoppingHook", "monitor": "mIoU", "patience": 0}]},
     "error: custom_hooks.0.patience: EarlyStoppingHook refuses 0 (patience must be a whole number >= 1"),
]


@pytest.mark.parametrize(("overrides", "line"), CASES)
def test_check_refuses_with_the_key_path(write_params: Callable[..., Path], overrides: dict[str, Any],
                                         line: str) -> None:
    result = CliRunner().invoke(main, ["check", "--params", str(write_params(overrides))])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(line), result.stderr


def test_check_accepts_good_arguments(write_params: Callable[..., Path]) -> None:
    overrides = {"custom_hooks": [{"type": "EMAHook", "momentum": 0.001, "begin_iter": 10, "priority": "NORMAL"}]}
    result = CliRunner().invoke(main, ["check", "--params", str(write_params(overrides))])
    assert result.exit_code == 0, result.output
