"""check_params: every problem at once, each naming its key path, what is wrong and what is allowed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from engine.config import load_params
from engine.config.schema import DEFAULT_HOOKS, KEYS, SECTIONS, defaults
from engine.config.validate import check_params, resolve
from engine.errors import ConfigError, error_lines
from tests.conftest import DELETE, ROOT, SHIPPED, apply_overrides, shipped_params


def check(overrides: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    return check_params(apply_overrides(shipped_params(), overrides or {}))


def problems(overrides: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check(overrides)
    return info.value.problems


def only_problem(overrides: dict[str, Any]) -> str:
    found = problems(overrides)
    assert len(found) == 1, found
    return found[0]


def schedulers(**second: Any) -> list[dict[str, Any]]:
    """The shipped LinearLR + PolyLR schedule with keys of the PolyLR entry overridden."""
    return [
        {"type": "LinearLR", "start_factor": 1.0e-6, "begin": 0, "end": 50},
        {"type": "PolyLR", "power": 1.0, "eta_min": 0.0, "begin": 50, "end": 600, **second},
    ]


# -- what passes --------------------------------------------------------------------------------------------------


def test_shipped_params_are_valid_without_warnings() -> None:
    cfg, warnings = check_params(load_params(SHIPPED))
    assert warnings == []
    assert cfg["optim"]["lr"] == 0.005
    assert set(cfg) == set(SECTIONS)


def test_every_preset_under_configs_is_valid() -> None:
    # Files under a `_base_` folder are fragments for inheritance, not complete configs.
    presets = [p for p in sorted((ROOT / "configs").rglob("*.y*ml")) if "_base_" not in p.parts]
    failures = {}
    for path in presets:
        try:
            check_params(load_params(path))
        except ConfigError as exc:
            failures[str(path.relative_to(ROOT))] = exc.problems
    assert failures == {}


MINIMAL = {"model": {"type": "UNet"}, "evaluator": {"type": "IoUMetric"}, "optim": {"lr": 0.01},
           "data": {"classes": ["a", "b"], "dataset": {"type": "SegDataset"}}, "train_cfg": {"max_iters": 10}}


def test_resolve_fills_defaults_for_a_minimal_file() -> None:
    cfg, warnings = check_params(MINIMAL, data=False)  # about defaults, not about a data directory
    assert warnings == []
    expected = defaults()
    expected["train_cfg"]["max_iters"] = 10
    expected["optim"]["lr"] = 0.01
    expected.update(model=MINIMAL["model"], evaluator=MINIMAL["evaluator"])
    expected["data"].update(MINIMAL["data"])
    assert cfg == expected
    assert set(cfg["default_hooks"]) == set(DEFAULT_HOOKS)


def test_every_schema_key_has_a_doc_and_a_valid_default() -> None:
    for key in KEYS:
        assert key.doc.strip(), key.path
        if key.choices is not None:
            assert key.default in key.choices, key.path


def test_null_default_hook_removes_it() -> None:
    cfg, _ = check({"default_hooks": {"checkpoint": None}})
    assert "checkpoint" not in cfg["default_hooks"]
    assert cfg["default_hooks"]["logger"] == {"type": "LoggerHook", "interval": 10}


def test_integer_lr_and_yaml_exponent_lr_are_numbers(tmp_path: Path) -> None:
    cfg, _ = check({"optim": {"lr": 1}})
    assert cfg["optim"]["lr"] == 1
    path = tmp_path / "p.yaml"
    path.write_text(SHIPPED.read_text(encoding="utf-8").replace("lr: 0.005", "lr: 6e-5"), encoding="utf-8")
    cfg, _ = check_params(load_params(path))
    assert cfg["optim"]["lr"] == 6e-05


@pytest.mark.parametrize(
    "clip", [{"max_norm": 1.0}, {"max_norm": 35, "norm_type": 2}, {"type": "value", "clip_value": 0.5}]
)
def test_valid_clip_grad(clip: dict[str, Any]) -> None:
    check({"optim_wrapper": {"clip_grad": clip}})


def test_amp_with_dtype_is_valid() -> None:
    cfg, _ = check({"optim_wrapper": {"type": "AmpOptimWrapper", "dtype": "bfloat16"}})
    assert cfg["optim_wrapper"]["dtype"] == "bfloat16"


@pytest.mark.parametrize("priority", [0, 100, "LOW", "very_low", "NORMAL"])
def test_valid_hook_priorities(priority: Any) -> None:
    check({"custom_hooks": [{"type": "DistSamplerSeedHook", "priority": priority}]})


def test_epoch_loop_schedule_in_epochs() -> None:
    check({"train_cfg": {"type": "EpochBasedTrainLoop", "max_iters": DELETE, "max_epochs": 5, "val_interval": 1},
           "param_scheduler": [{"type": "PolyLR", "begin": 0, "end": 5}]})


# -- unknown names ------------------------------------------------------------------------------------------------


def test_unknown_section_with_did_you_mean() -> None:
    assert only_problem({"optm": {"lr": 0.1}}) == (
        "optm: unknown section (did you mean 'optim'?); sections are " + ", ".join(SECTIONS))


def test_unknown_nested_key_with_did_you_mean() -> None:
    assert only_problem({"data": {"batch_sise": 8}}) == (
        "data.batch_sise: unknown key (did you mean 'batch_size'?); data accepts batch_size, classes, collate_fn, "
        "dataset, drop_last, num_workers, pin_memory, root, val_batch_size")


def test_unknown_key_two_levels_down() -> None:
    message = only_problem({"mlflow": {"tracking_uri": None, "log_checkpoint": "last"}})
    assert message.startswith("mlflow.log_checkpoint: unknown key (did you mean 'log_checkpoints'?)")


def test_keys_of_earlier_params_files_point_to_their_new_home() -> None:
    assert problems({"data": {"image_size": 32, "augment": {"flip": True}}}) == [
        "data.image_size: moved to prepare.image_size",
        "data.augment: moved to data.dataset.flip (the dataset's own argument)"]


def test_unknown_mlflow_key() -> None:
    message = only_problem({"mlflow": {"experiment": "x"}})
    assert message.startswith("mlflow.experiment: unknown key (did you mean 'experiment_name'?); mlflow accepts ")


def test_unknown_model_type_lists_available_types() -> None:
    assert only_problem({"model": {"type": "Unet"}}) == (
        "model.type: unknown type 'Unet' (did you mean 'UNet'?); available: ConvNeXtSegmenter, FCN, SegFormer, "
        "UNet, ViTSegmenter; or a dotted path like 'my_pkg.module.Class'")


def test_unknown_optimizer_type() -> None:
    message = only_problem({"optim": {"type": "AdamX"}})
    assert re.match(r"optim\.type: unknown type 'AdamX' \(did you mean 'AdamW?'\?\); available: .*\bAdamW\b.*\bSGD\b",
                    message), message


def test_dotted_type_that_does_not_import() -> None:
    assert only_problem({"model": {"type": "no_such_pkg.models.Net"}}) == (
        "model.type: 'no_such_pkg.models.Net': cannot import module 'no_such_pkg.models' "
        "(No module named 'no_such_pkg')")
    assert only_problem({"model": {"type": "torch.nn.NoSuchNet"}}) == (
        "model.type: 'torch.nn.NoSuchNet': module 'torch.nn' has no attribute 'NoSuchNet'")


def test_optimizer_kwarg_typo() -> None:
    message = only_problem({"optim": {"weight_decy": 0.05}})
    assert message.startswith("optim.weight_decy: AdamW has no argument 'weight_decy' (did you mean 'weight_decay'?); "
                              "it accepts lr, betas, eps, weight_decay, ")
    assert "params" not in message.split("it accepts", 1)[1].split(", ")  # engine-supplied, not offered


def test_model_kwarg_typo_and_engine_owned_argument() -> None:
    found = problems({"model": {"base_chanels": 8, "num_classes": 3}})
    assert found[0].startswith("model.base_chanels: UNet has no argument 'base_chanels' (did you mean "
                               "'base_channels'?); it accepts ")
    assert found[1] == "model.num_classes: also given by data.classes (4); keep one of the two"


def test_model_kwargs_follow_the_model_type() -> None:
    # kwargs of the shipped UNet do not carry over to a model that does not take them
    found = problems({"model": {"type": "ViTSegmenter"}})
    assert found == [
        "model.base_channels: ViTSegmenter has no argument 'base_channels' (did you mean 'in_channels'?); it accepts "
        "img_size, patch_size, embed_dims, num_layers, num_heads, mlp_ratio, ignore_index, in_channels, "
        "auxiliary_head, test_cfg, init_cfg, pretrained",
        "model.num_stages: ViTSegmenter has no argument 'num_stages' (did you mean 'num_layers'?); it accepts "
        "img_size, patch_size, embed_dims, num_layers, num_heads, mlp_ratio, ignore_index, in_channels, "
        "auxiliary_head, test_cfg, init_cfg, pretrained",
    ]


def test_unknown_hook_type() -> None:
    message = only_problem({"custom_hooks": [{"type": "LogerHook"}]})
    assert re.match(r"custom_hooks\.0\.type: unknown type 'LogerHook' \(did you mean 'LoggerHook'\?\); available: "
                    r".*CheckpointHook.*LoggerHook", message), message


def test_hook_kwarg_typo() -> None:
    assert only_problem({"default_hooks": {"logger": {"intervall": 5}}}) == (
        "default_hooks.logger.intervall: LoggerHook has no argument 'intervall' (did you mean 'interval'?); "
        "it accepts interval, ignore_last, log_metric_by_epoch, progress_bar, json_log")


def test_misspelt_default_hook_removal_is_an_error() -> None:
    assert only_problem({"default_hooks": {"chekpoint": None}}) == (
        "default_hooks.chekpoint: no default hook of that name to remove (did you mean 'checkpoint'?); default hooks "
        "are " + ", ".join(DEFAULT_HOOKS))


def test_misspelt_default_hook_name_warns() -> None:
    cfg, warnings = check({"default_hooks": {"loger": {"type": "LoggerHook", "interval": 5}}})
    assert warnings == ["default_hooks.loger: not a default hook name, so this adds another hook "
                        "(did you mean 'logger'?)"]
    assert cfg["default_hooks"]["loger"]["interval"] == 5


def test_train_loop_kwarg_typo() -> None:
    assert only_problem({"train_cfg": {"val_intreval": 100}}) == (
        "train_cfg.val_intreval: IterBasedTrainLoop has no argument 'val_intreval' (did you mean 'val_interval'?); "
        "it accepts max_iters, val_begin, val_interval, nonfinite, max_nonfinite_skips")


def test_val_loop_takes_no_keys() -> None:
    assert only_problem({"val_cfg": {"interval": 1}}) == (
        "val_cfg.interval: ValLoop has no argument 'interval'; it accepts no arguments")


def test_unknown_choice_with_did_you_mean() -> None:
    assert only_problem({"eval": {"split": "tset"}}) == (
        "eval.split: 'tset' is not allowed (did you mean 'test'?); choose one of: val, test")


# -- types --------------------------------------------------------------------------------------------------------


def test_quoted_integer() -> None:
    assert only_problem({"data": {"batch_size": "16"}}) == (
        "data.batch_size: must be an integer, got '16' (remove the quotes to make it a number)")
    assert only_problem({"data": {"batch_size": "big"}}) == "data.batch_size: must be an integer, got 'big'"


def test_quoted_learning_rate_hints_at_the_quotes() -> None:
    assert only_problem({"optim": {"lr": "6e-5"}}) == (
        "optim.lr: must be a number, got '6e-5' (remove the quotes to make it a number)")


@pytest.mark.parametrize(("overrides", "message"), [
    ({"seed": True}, "seed: must be an integer, got True"),
    ({"deterministic": "yes"}, "deterministic: must be true/false, got 'yes'"),
    ({"data": {"classes": "a,b"}}, "data.classes: must be a list or null, got 'a,b'"),
    ({"train_cfg": {"max_iters": 600.5}}, "train_cfg.max_iters: must be an integer or null, got 600.5"),
    ({"param_scheduler": {"type": "PolyLR"}}, "param_scheduler: must be a list, got {'type': 'PolyLR'}"),
    ({"custom_hooks": {"type": "DistSamplerSeedHook"}},
     "custom_hooks: must be a list, got {'type': 'DistSamplerSeedHook'}"),
    ({"data": 5}, "data: must be a mapping, got 5"),  # once, not once per data key
    ({"model": {"type": None}}, "model.type: must be a type name string, got None"),
])
def test_wrong_types(overrides: dict[str, Any], message: str) -> None:
    assert problems(overrides) == [message]


def test_value_ranges() -> None:
    assert problems({"data": {"batch_size": 0, "num_workers": -1, "classes": ["background"]}}) == [
        "data.batch_size: must be at least 1, got 0",
        "data.num_workers: must be 0 or more, got -1",
        "data.classes: must be at least 2 distinct names (or null), got ['background']",
    ]


def test_optimizer_values_are_checked_by_torch() -> None:
    assert only_problem({"optim": {"lr": -0.1}}) == "optim.lr: AdamW refuses -0.1 (Invalid learning rate: -0.1)"
    assert only_problem({"optim": {"betas": [1.5, 0.999]}}) == (
        "optim.betas: AdamW refuses [1.5, 0.999] (Invalid beta parameter at index 0: 1.5)")


def test_loop_length() -> None:
    assert only_problem({"train_cfg": {"max_iters": DELETE}}) == "train_cfg.max_iters: required by IterBasedTrainLoop"
    assert only_problem({"train_cfg": {"max_iters": 0}}) == "train_cfg.max_iters: must be at least 1, got 0"
    assert only_problem({"train_cfg": {"max_epochs": 3}}) == (
        "train_cfg.max_epochs: not used by IterBasedTrainLoop (set train_cfg.max_iters instead)")


# -- hooks --------------------------------------------------------------------------------------------------------


def test_hook_priority_out_of_range() -> None:
    assert only_problem({"custom_hooks": [{"type": "DistSamplerSeedHook", "priority": 150}]}) == (
        "custom_hooks.0.priority: must be between 0 and 100, got 150")


def test_hook_priority_unknown_name() -> None:
    assert only_problem({"custom_hooks": [{"type": "DistSamplerSeedHook", "priority": "SUPER"}]}) == (
        "custom_hooks.0.priority: must be an integer 0-100 or one of HIGHEST, VERY_HIGH, HIGH, ABOVE_NORMAL, NORMAL, "
        "BELOW_NORMAL, LOW, VERY_LOW, LOWEST, got 'SUPER'")


def test_default_hook_priority_is_checked_too() -> None:
    assert only_problem({"default_hooks": {"logger": {"priority": -1}}}) == (
        "default_hooks.logger.priority: must be between 0 and 100, got -1")


def test_hook_entry_must_be_a_mapping() -> None:
    assert only_problem({"custom_hooks": ["DistSamplerSeedHook"]}) == (
        "custom_hooks.0: must be a mapping with a `type` key, got 'DistSamplerSeedHook'")


# -- schedulers ---------------------------------------------------------------------------------------------------


def test_scheduler_end_beyond_max_iters() -> None:
    assert only_problem({"param_scheduler": schedulers(end=800)}) == (
        "param_scheduler.1.end: 800 iterations is beyond train_cfg.max_iters = 600; set param_scheduler.1.end <= 600 "
        "or raise train_cfg.max_iters")


def test_scheduler_end_beyond_max_epochs() -> None:
    message = only_problem({
        "train_cfg": {"type": "EpochBasedTrainLoop", "max_iters": DELETE, "max_epochs": 3, "val_interval": 1},
        "param_scheduler": [{"type": "PolyLR", "end": 5}],
    })
    assert message == ("param_scheduler.0.end: 5 epochs is beyond train_cfg.max_epochs = 3; set "
                       "param_scheduler.0.end <= 3 or raise train_cfg.max_epochs")


def test_by_epoch_true_in_an_iteration_loop() -> None:
    assert only_problem({"param_scheduler": schedulers(by_epoch=True)}) == (
        "param_scheduler.1.by_epoch: true in an IterBasedTrainLoop would change the value only once, after the whole "
        "run; remove it (schedulers follow the loop's kind) or set by_epoch: false")


def test_begin_not_before_end() -> None:
    assert only_problem({"param_scheduler": schedulers(begin=600)}) == (
        "param_scheduler.1.end: must be greater than begin (600), got 600")


def test_negative_begin() -> None:
    found = problems({"param_scheduler": [{"type": "LinearLR", "begin": -5, "end": 50}]})
    assert found[0] == "param_scheduler.0.begin: must be 0 or more, got -5"


def test_unknown_scheduler_kwarg() -> None:
    assert only_problem({"param_scheduler": schedulers(powr=0.9)}) == (
        "param_scheduler.1.powr: PolyLR has no argument 'powr' (did you mean 'power'?); it accepts begin, by_epoch, "
        "convert_to_iter_based, end, eta_min, power, type, verbose")


def test_unknown_scheduler_type() -> None:
    message = only_problem({"param_scheduler": [{"type": "LinerLR", "end": 50}]})
    assert message.startswith("param_scheduler.0.type: unknown scheduler 'LinerLR' (did you mean 'LinearLR'?); "
                              "available: ")


def test_scheduler_value_error_from_the_trial_build() -> None:
    message = only_problem({"param_scheduler": [{"type": "LinearLR", "start_factor": 2.0, "end": 50}]})
    assert message.startswith("param_scheduler.0: ")
    assert "start_factor" in message


def test_gap_between_scheduler_windows_is_a_warning() -> None:
    cfg, warnings = check({"param_scheduler": schedulers(begin=60)})
    assert warnings == ["param_scheduler: no scheduler covers iterations 50-59; the value stays where the previous "
                        "scheduler left it"]
    assert cfg["param_scheduler"][1]["begin"] == 60


# -- optim_wrapper ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("clip", "expected"), [
    ([1.0], ["optim_wrapper.clip_grad: must be a mapping or null, got [1.0]"]),
    (1.0, ["optim_wrapper.clip_grad: must be a mapping or null, got 1.0"]),
    ({"norm_type": 2}, ["optim_wrapper.clip_grad.max_norm: required when clipping by norm"]),
    ({"max_norm": -1}, ["optim_wrapper.clip_grad.max_norm: must be a positive number, got -1"]),
    ({"max_norm": "1"}, ["optim_wrapper.clip_grad.max_norm: must be a positive number, got '1'"]),
    ({"max_nrom": 1.0}, [
        "optim_wrapper.clip_grad.max_nrom: unknown key (did you mean 'max_norm'?); clipping by norm accepts "
        "error_if_nonfinite, max_norm, norm_type, type",
        "optim_wrapper.clip_grad.max_norm: required when clipping by norm",
    ]),
    ({"type": "value"}, ["optim_wrapper.clip_grad.clip_value: required when clipping by value"]),
    ({"type": "value", "clip_value": 1, "max_norm": 1}, [
        "optim_wrapper.clip_grad.max_norm: unknown key; clipping by value accepts clip_value, type",
    ]),
    ({"type": "vlaue", "clip_value": 1},
     ["optim_wrapper.clip_grad.type: 'vlaue' is not allowed; choose norm or value"]),
])
def test_clip_grad_shapes(clip: Any, expected: list[str]) -> None:
    assert problems({"optim_wrapper": {"clip_grad": clip}}) == expected


def test_dtype_needs_amp() -> None:
    assert only_problem({"optim_wrapper": {"dtype": "bfloat16"}}) == (
        "optim_wrapper.dtype: 'bfloat16' needs optim_wrapper.type: AmpOptimWrapper (it is OptimWrapper)")


def test_dtype_choices() -> None:
    assert only_problem({"optim_wrapper": {"type": "AmpOptimWrapper", "dtype": "fp16"}}) == (
        "optim_wrapper.dtype: 'fp16' is not allowed; choose one of: null, float16, bfloat16")


def test_wrapper_type_choices() -> None:
    assert only_problem({"optim_wrapper": {"type": "AmpOptimWraper"}}) == (
        "optim_wrapper.type: 'AmpOptimWraper' is not allowed (did you mean 'AmpOptimWrapper'?); choose one of: "
        "OptimWrapper, AmpOptimWrapper")


def test_accumulative_counts_at_least_one() -> None:
    assert only_problem({"optim_wrapper": {"accumulative_counts": 0}}) == (
        "optim_wrapper.accumulative_counts: must be at least 1, got 0")


def test_loss_scale() -> None:
    assert only_problem({"optim_wrapper": {"type": "AmpOptimWrapper", "loss_scale": -1}}) == (
        "optim_wrapper.loss_scale: must be 'dynamic', a positive number or a dict of GradScaler arguments, got -1")


def test_decay_mult_without_weight_decay() -> None:
    assert only_problem({
        "optim": {"weight_decay": DELETE},
        "optim_wrapper": {"paramwise_cfg": {"custom_keys": {"norm": {"decay_mult": 0.0}}}},
    }) == ("optim_wrapper.paramwise_cfg.custom_keys.norm.decay_mult: 0.0 multiplies optim.weight_decay, which is not "
           "set; set optim.weight_decay or remove optim_wrapper.paramwise_cfg.custom_keys.norm.decay_mult")


def test_paramwise_unknown_key() -> None:
    message = only_problem({"optim_wrapper": {"paramwise_cfg": {"custom_key": {}}}})
    assert message.startswith("optim_wrapper.paramwise_cfg.custom_key: unknown key")
    assert message.endswith("(did you mean 'custom_keys'?)")


# -- all at once --------------------------------------------------------------------------------------------------


def test_all_problems_are_reported_at_once() -> None:
    found = problems({
        "optm": {},
        "data": {"batch_sise": 8},
        "optim": {"lr": "6e-5"},
        "param_scheduler": schedulers(end=900),
    })
    assert [p.split(":", 1)[0] for p in found] == ["optm", "data.batch_sise", "optim.lr", "param_scheduler.1.end"]


def test_problems_in_independent_sections_are_all_reported() -> None:
    found = problems({
        "model": {"type": "Unet"},
        "optim": {"weight_decy": 0.1},
        "train_cfg": {"val_intreval": 5},
        "custom_hooks": [{"type": "DistSamplerSeedHook", "priority": 150}],
        "optim_wrapper": {"clip_grad": {"max_norm": 0}},
        "eval": {"split": "train"},
    })
    assert [p.split(":", 1)[0] for p in found] == [
        "eval.split", "model.type", "optim.weight_decy", "train_cfg.val_intreval", "custom_hooks.0.priority",
        "optim_wrapper.clip_grad.max_norm",
    ]


def test_config_error_text() -> None:
    with pytest.raises(ConfigError) as info:
        check({"optm": {}, "data": {"batch_sise": 8}})
    lines = error_lines(info.value)
    assert len(lines) == 2
    assert lines[0].startswith("error: optm: unknown section")
    assert lines[1].startswith("error: data.batch_sise: unknown key")
    assert info.value.exit_code == 2


def test_resolve_drops_null_default_hooks_only() -> None:
    cfg = resolve({"default_hooks": {"sampler_seed": None, "logger": {"interval": 1}}})
    assert "sampler_seed" not in cfg["default_hooks"]
    assert cfg["default_hooks"]["logger"] == {"type": "LoggerHook", "interval": 1}


# -- argument values ----------------------------------------------------------------------------------------------


def test_kwarg_values_against_plain_annotations() -> None:
    assert problems({
        "model": {"base_channels": "16"},
        "optim": {"eps": "1e-8"},
        "default_hooks": {"logger": {"interval": 2.5}, "checkpoint": {"save_last": "yes"}},
    }) == [
        "model.base_channels: must be an integer, got '16' (remove the quotes to make it a number)",
        "optim.eps: must be a number, got '1e-8' (remove the quotes to make it a number)",
        "default_hooks.logger.interval: must be an integer, got 2.5",
        "default_hooks.checkpoint.save_last: must be true/false, got 'yes'",
    ]


def test_builtin_model_values_are_checked_without_building_weights() -> None:
    assert only_problem({"model": {"num_stages": 0}}) == (
        "model.num_stages: UNet refuses 0 (num_stages must be >= 1, got 0)")
    message = only_problem({"model": {"_delete_": True, "type": "ViTSegmenter", "embed_dims": 30, "num_heads": 4}})
    assert message == ("model: ViTSegmenter refuses these arguments (model.embed_dims=30 must be "
                       "divisible by model.num_heads=4); got embed_dims=30, num_heads=4")


SECTION_VALUES = [None, 5, "x", [1], {"a": 1}, True]


@pytest.mark.parametrize("section", [s for s in SECTIONS if s not in ("seed", "deterministic")])
def test_any_section_value_is_a_config_error_never_a_crash(section: str) -> None:
    for value in SECTION_VALUES:
        raw = shipped_params()
        raw[section] = value
        try:
            check_params(raw, data=False)  # `prepare: null` would rightly ask for data this checkout lacks
        except ConfigError as exc:
            # Other sections may fail too when they depend on this one (a model offered data.classes), but this
            # section is always named.
            assert any(p.split(":", 1)[0].startswith(section) for p in exc.problems), exc.problems


@pytest.mark.parametrize("key", ["type", "begin", "end", "by_epoch", "power", "eta_min"])
def test_any_scheduler_value_is_a_config_error_never_a_crash(key: str) -> None:
    for value in [None, -1, 1.5, "x", [], {"a": 1}, True, float("nan")]:
        try:
            check({"param_scheduler": schedulers(**{key: value})})
        except ConfigError as exc:
            assert all(p.startswith("param_scheduler.1") for p in exc.problems), exc.problems


@pytest.mark.parametrize("key", ["type", "max_norm", "norm_type", "clip_value"])
def test_any_clip_grad_value_is_a_config_error_never_a_crash(key: str) -> None:
    for value in [None, -1, "x", [], {"a": 1}, True]:
        try:
            check({"optim_wrapper": {"clip_grad": {"max_norm": 1.0, key: value}}})
        except ConfigError as exc:
            assert all(p.startswith("optim_wrapper.clip_grad") for p in exc.problems), exc.problems


def test_epoch_checkpoints_in_an_iteration_loop_are_refused() -> None:
    message = only_problem({"default_hooks": {"checkpoint": {"type": "CheckpointHook", "interval": 100,
                                                             "by_epoch": True}}})
    assert message == ("default_hooks.checkpoint.by_epoch: true never saves in an IterBasedTrainLoop; remove it "
                       "(checkpoints follow the loop's kind) or set by_epoch: false")


@pytest.mark.parametrize("interval", [0, -2])
def test_checkpoint_interval_the_hook_refuses_is_refused_by_check(interval: int) -> None:
    # CheckpointHook's own constructor refuses it; the check must say so before any training starts.
    found = only_problem({"default_hooks": {"checkpoint": {"type": "CheckpointHook", "interval": interval}}})
    assert found.startswith(f"default_hooks.checkpoint.interval: CheckpointHook refuses {interval}")


def test_logger_interval_the_hook_refuses_is_refused_by_check() -> None:
    found = only_problem({"default_hooks": {"logger": {"type": "LoggerHook", "interval": 0}}})
    assert found.startswith("default_hooks.logger.interval: LoggerHook refuses 0")


def test_removed_param_scheduler_hook_needs_an_empty_schedule() -> None:
    assert only_problem({"default_hooks": {"param_scheduler": None}}) == (
        "default_hooks.param_scheduler: removed, so the param_scheduler list would never be applied; keep the hook "
        "or set param_scheduler: []")
    cfg, _ = check({"default_hooks": {"param_scheduler": None}, "param_scheduler": []})
    assert "param_scheduler" not in cfg["default_hooks"]


def test_mlflow_run_contents_keys_are_checked_with_their_key_path() -> None:
    assert problems({"mlflow": {"register_model": 3, "system_metrics": "maybe"}}) == [
        "mlflow.system_metrics: must be true/false, got 'maybe'",
        "mlflow.register_model: must be a string or null, got 3"]
    assert only_problem({"mlflow": {"register_model": "team/model"}}).startswith(
        "mlflow.register_model: 'team/model' is not a registered-model name MLflow accepts")
    cfg = check({"mlflow": {"register_model": "shapes-unet", "system_metrics": True}})[0]
    assert cfg["mlflow"]["register_model"] == "shapes-unet" and cfg["mlflow"]["system_metrics"] is True


def test_mlflow_run_contents_keys_default_to_off() -> None:
    cfg = check({})[0]
    assert cfg["mlflow"]["register_model"] is None and cfg["mlflow"]["system_metrics"] is False
