"""check refuses every bad CheckpointHook argument with its key path, one line each, all at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.config.schema import training_hash
from tests.engine.config.test_validate import check, only_problem, problems

P = "default_hooks.checkpoint"


def ckpt(**kwargs: Any) -> dict[str, Any]:
    return {"default_hooks": {"checkpoint": kwargs}}


CASES = [
    ({"save_best": 3}, f"{P}.save_best: CheckpointHook refuses 3 (save_best must be a metric name, a list of metric "
                       f"names, auto or null, got 3)"),
    ({"save_best": []}, f"{P}.save_best: CheckpointHook refuses [] (save_best must be a metric name"),
    ({"save_best": ["mIoU", ""]}, f"{P}.save_best: CheckpointHook refuses ['mIoU', ''] (save_best must be"),
    ({"save_best": ["mIoU", "mIoU"]}, f"{P}.save_best: CheckpointHook refuses ['mIoU', 'mIoU'] (save_best names a "
                                      f"metric twice"),
    ({"save_best": ["auto", "mIoU"]}, f"{P}.save_best: CheckpointHook refuses ['auto', 'mIoU'] (save_best: auto (the "
                                      f"first headline metric) cannot be listed with other metrics"),
    ({"save_best": "score"}, f"{P}.save_best: CheckpointHook refuses 'score' (save_best 'score': cannot tell whether "
                             f"larger or smaller is better (larger for names containing acc, top, AR@"),
    ({"save_best": "mIoU", "rule": "bigger"}, f"{P}.rule: CheckpointHook refuses 'bigger' (rule must be greater, "
                                              f"less, a list of them (one per save_best metric) or null"),
    ({"save_best": ["mIoU", "aAcc"], "rule": ["greater", "less", "less"]},
     f"{P}.rule: CheckpointHook refuses ['greater', 'less', 'less'] (rule lists 3 rules for 2 save_best metrics"),
    ({"rule": "greater"}, f"{P}.rule: CheckpointHook refuses 'greater' (rule is only used with save_best: set "
                          f"save_best, or remove rule)"),
    ({"save_best": "mIoU", "greater_keys": 5}, f"{P}.greater_keys: CheckpointHook refuses 5 (greater_keys must be a "
                                               f"list of metric-name parts (or one), got 5)"),
    ({"save_best": "mIoU", "less_keys": [""]}, f"{P}.less_keys: CheckpointHook refuses [''] (less_keys must be"),
    ({"filename_tmpl": "iter"}, f"{P}.filename_tmpl: CheckpointHook refuses 'iter' (filename_tmpl must contain "
                                f"exactly one {{}} (replaced by the step) and no other braces"),
    ({"filename_tmpl": "a_{}_{}"}, f"{P}.filename_tmpl: CheckpointHook refuses 'a_{{}}_{{}}' (filename_tmpl must "
                                   f"contain exactly one {{}}"),
    ({"filename_tmpl": "ckpt/{}"}, f"{P}.filename_tmpl: CheckpointHook refuses 'ckpt/{{}}' (filename_tmpl must be a "
                                   f"plain directory name, without path separators"),
    ({"filename_tmpl": ".iter_{}"}, f"{P}.filename_tmpl: CheckpointHook refuses '.iter_{{}}' (filename_tmpl must not "
                                    f"start with '.'"),
    ({"filename_tmpl": "best_{}"}, f"{P}.filename_tmpl: CheckpointHook refuses 'best_{{}}' (filename_tmpl must not "
                                   f"start with 'best_'"),
    ({"filename_tmpl": 7}, f"{P}.filename_tmpl: CheckpointHook refuses 7 (filename_tmpl must be a string"),
    ({"save_begin": -1}, f"{P}.save_begin: CheckpointHook refuses -1 (save_begin must be a whole number >= 0"),
    ({"save_begin": 1.5}, f"{P}.save_begin: must be an integer, got 1.5"),
    ({"save_optimizer": "no"}, f"{P}.save_optimizer: must be true/false, got 'no'"),
    ({"save_param_scheduler": 0}, f"{P}.save_param_scheduler: must be true/false, got 0"),
    ({"publish": "yes"}, f"{P}.publish: must be true/false, got 'yes'"),
    ({"by_epoch": "no"}, f"{P}.by_epoch: CheckpointHook refuses 'no' (by_epoch must be true, false or null"),
    ({"max_keep_ckpts": 1.5}, f"{P}.max_keep_ckpts: must be an integer, got 1.5"),
    ({"published_keys": ["meta"]}, f"{P}.published_keys: CheckpointHook refuses ['meta'] (published_keys must hold "
                                   f"state_dict (the weights) and may hold meta"),
    ({"published_keys": ["state_dict", "optimizer"]}, f"{P}.published_keys: CheckpointHook refuses ['state_dict', "
                                                      f"'optimizer'] (published_keys must hold state_dict"),
    ({"published_keys": 3}, f"{P}.published_keys: CheckpointHook refuses 3 (published_keys must be a list of"),
]


@pytest.mark.parametrize(("kwargs", "line"), CASES)
def test_each_bad_argument_is_one_line_naming_its_key(kwargs: dict[str, Any], line: str) -> None:
    found = only_problem(ckpt(**kwargs))
    assert found.startswith(line), found


def test_every_bad_argument_is_reported_at_once() -> None:
    found = problems(ckpt(save_best="score", filename_tmpl="x", save_begin=-2, publish="y", save_optimizer=None))
    assert sorted(p.split(":", 1)[0] for p in found) == [
        f"{P}.filename_tmpl", f"{P}.publish", f"{P}.save_begin", f"{P}.save_best", f"{P}.save_optimizer"], found


def test_good_arguments_pass() -> None:
    cfg, warnings = check(ckpt(save_best=["mIoU", "my_score"], rule=["greater", "less"], greater_keys="IoU",
                               less_keys=["err"], filename_tmpl="ckpt_{}.it", save_begin=5, save_optimizer=False,
                               save_param_scheduler=False, publish=True, published_keys=["meta", "state_dict"],
                               by_epoch=False))
    assert warnings == []
    assert cfg["default_hooks"]["checkpoint"]["save_best"] == ["mIoU", "my_score"]
    for kwargs in ({"save_best": "auto"}, {"save_best": "val_loss"}, {"save_best": "auto", "rule": "less"},
                   {"save_best": "Score", "greater_keys": ["score"]}, {"published_keys": "state_dict"}):
        check(ckpt(**kwargs))


def test_epoch_saves_in_an_iteration_loop_stay_refused_and_iteration_saves_in_an_epoch_loop_pass() -> None:
    assert only_problem(ckpt(by_epoch=True)).startswith(f"{P}.by_epoch: true never saves in an IterBasedTrainLoop")
    check({"train_cfg": {"_delete_": True, "type": "EpochBasedTrainLoop", "max_epochs": 2}, "param_scheduler": [],
           "default_hooks": {"checkpoint": {"by_epoch": False, "interval": 5}}})


def test_checkpoint_settings_are_outside_the_params_hash() -> None:
    # CheckpointHook only observes training: changing what or when it saves resumes the same training.
    plain, _ = check()
    changed, _ = check(ckpt(save_best="mIoU", rule="greater", filename_tmpl="c_{}", save_begin=3,
                            save_optimizer=False, save_param_scheduler=False, publish=True))
    assert training_hash(plain) == training_hash(changed)


def test_check_exits_2_with_one_line(write_params: Callable[..., Path]) -> None:
    result = CliRunner().invoke(main, ["check", "--params", str(write_params(ckpt(save_begin=-1)))])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        f"error: {P}.save_begin: CheckpointHook refuses -1 (save_begin must be a whole number >= 0 (the first step "
        f"an interval checkpoint may be saved at), got -1)"]


def test_the_constructor_refuses_what_check_refuses() -> None:
    from engine.hooks.checkpoint_hook import CheckpointHook

    with pytest.raises(ValueError, match=r"save_begin must be a whole number >= 0"):
        CheckpointHook(save_begin=-1)
    with pytest.raises(ValueError, match=r"filename_tmpl must not start with 'best_'"):
        CheckpointHook(filename_tmpl="best_{}")
