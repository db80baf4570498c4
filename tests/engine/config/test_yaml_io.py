"""Loading params files: YAML-1.2 numbers, `_base_`/`_delete_` inheritance, flattening and the params hash."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pytest
import yaml

from engine.config import dump_yaml, flatten, load_params, merge, params_hash, parse_yaml
from engine.config.validate import check_params
from engine.errors import UserError
from tests.conftest import SHIPPED


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- YAML scalars -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6e-05", 6e-05),
        ("6e-5", 6e-05),
        ("1e-3", 0.001),
        ("3e-4", 0.0003),
        ("1.0e-6", 1e-06),
        ("1E5", 100000.0),
        ("1e+3", 1000.0),
        ("-6e-5", -6e-05),
        (".5", 0.5),
        ("-.5", -0.5),
        ("+.5", 0.5),
        ("1.", 1.0),
        (".inf", math.inf),
        ("-.inf", -math.inf),
        ("+.Inf", math.inf),
    ],
)
def test_yaml_numbers_arrive_as_floats(text: str, expected: float) -> None:
    value = parse_yaml(f"lr: {text}")["lr"]
    assert type(value) is float
    assert value == expected


def test_yaml_nan_is_a_float() -> None:
    value = parse_yaml("x: .nan")["x"]
    assert isinstance(value, float) and math.isnan(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16", 16),
        ("-3", -3),
        ("1_000", 1000),
        ("017", 17),  # YAML 1.1 would read octal 15
        ("0o17", 15),
        ("0x1F", 31),
        ("0b101", 5),
        ("1:30", "1:30"),  # YAML 1.1 would read base-60 90
        ("yes", "yes"),  # YAML 1.1 booleans are plain strings in YAML 1.2
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("true", True),
        ("False", False),
        ("null", None),
        ("~", None),
        ("1e", "1e"),
        ("1.2.3", "1.2.3"),
    ],
)
def test_yaml_scalars_follow_yaml_1_2(text: str, expected: object) -> None:
    value = parse_yaml(f"k: {text}")["k"]
    assert value == expected
    assert type(value) is type(expected)


SCALARS = ["6e-05", "1e-3", "-.5", "+.5", ".inf", "017", "0o17", "0x1F", "1:30", "yes", "no", "on", "off", "1_000",
           "TRUE", "Null", "1.5e3", "-0", "1e", "y", "2001-12-14"]


@pytest.mark.parametrize("text", SCALARS)
def test_yaml_scalars_read_as_dvc_reads_them(text: str) -> None:
    # `dvc exp show` and `dvc exp run -S` read params.yaml with ruamel (YAML 1.2); training must see the same values.
    ruamel_yaml = pytest.importorskip("ruamel.yaml")
    expected = ruamel_yaml.YAML(typ="safe").load(f"k: {text}")["k"]
    value = parse_yaml(f"k: {text}")["k"]
    assert (value, type(value)) == (expected, type(expected))


def test_dump_yaml_round_trips_strings_that_look_like_numbers() -> None:
    # PyYAML's own dumper leaves '6e-5' unquoted (a string in YAML 1.1), which would read back as a float.
    data = {"run_name": "6e-5", "classes": ["1e3", "017", "yes", "", "null", "-.5", "0x1F", "1:30", "x"],
            "lr": 6e-05, "inf": math.inf, "n": 17, "flag": True, "none": None, "nested": {"name": "é"}}
    text = dump_yaml(data)
    assert parse_yaml(text) == data
    assert list(parse_yaml(text)) == list(data)  # key order kept
    assert "run_name: '6e-5'" in text


def test_dvc_round_trip_form_loads_and_validates(tmp_path: Path) -> None:
    # What `dvc exp run -S optim.lr=6e-5 -S optim.betas=[0.95,0.999]` leaves in params.yaml (ruamel round trip).
    ruamel_yaml = pytest.importorskip("ruamel.yaml")
    rt = ruamel_yaml.YAML()
    data = rt.load(SHIPPED.read_text(encoding="utf-8"))
    data["optim"]["lr"] = 6e-05
    data["optim"]["betas"] = [0.95, 0.999]
    data["optim"]["eps"] = 1e-08
    buffer = io.StringIO()
    rt.dump(data, buffer)
    text = buffer.getvalue()
    assert "lr: 6e-05" in text and "- 0.95" in text  # the forms PyYAML 1.1 gets wrong
    params = load_params(write(tmp_path / "params.yaml", text))
    assert params["optim"]["lr"] == 6e-05 and isinstance(params["optim"]["lr"], float)
    assert params["optim"]["betas"] == [0.95, 0.999]
    assert params["optim"]["eps"] == 1e-08
    cfg, _ = check_params(params)
    assert cfg["optim"]["lr"] == 6e-05


def test_block_lists_and_exponent_floats_in_a_file(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "optim:\n  type: AdamW\n  lr: 6e-05\n  betas:\n  - 0.9\n  - 0.999\n"
                                      "param_scheduler:\n- type: LinearLR\n  start_factor: 1e-6\n  end: 5\n")
    params = load_params(path)
    assert params["optim"] == {"type": "AdamW", "lr": 6e-05, "betas": [0.9, 0.999]}
    assert params["param_scheduler"] == [{"type": "LinearLR", "start_factor": 1e-06, "end": 5}]


def test_shipped_params_load_with_numbers_as_numbers() -> None:
    params = load_params(SHIPPED)
    assert isinstance(params["optim"]["lr"], float)
    assert params["param_scheduler"][0]["start_factor"] == 1e-06


# -- file errors --------------------------------------------------------------------------------------------------


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "seed: 1\ndata:\n  batch_size: 16\n   image_size: 2\n")
    with pytest.raises(UserError, match=rf"^{re.escape(str(path))}:4: not valid YAML \(mapping values are not "
                                        r"allowed here\)$"):
        load_params(path)


def test_unclosed_bracket_names_where_it_started(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yaml", "seed: 1\ndata:\n  classes: [a, b\noptim:\n  lr: 1\n")
    with pytest.raises(UserError, match=r"bad\.yaml:4: not valid YAML \(.*flow sequence started at line 3\)"):
        load_params(path)


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.yaml", "optim:\n  lr: 0.1\n  type: SGD\n  lr: 0.2\n")
    with pytest.raises(UserError, match=r"dup\.yaml:4: not valid YAML \(duplicate key 'lr' \(first at line 2\)\)"):
        load_params(path)


def test_merge_keys_are_not_duplicates() -> None:
    assert parse_yaml("a: &x {b: 1, c: 2}\nd:\n  <<: *x\n  b: 3\n")["d"] == {"b": 3, "c": 2}


@pytest.mark.parametrize(("text", "kind"), [("- 1\n- 2\n", "list"), ("just text\n", "str"), ("42\n", "int")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path / "p.yaml", text)
    with pytest.raises(UserError, match=rf"p\.yaml: top level must be a mapping of sections, got {kind}$"):
        load_params(path)


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    assert load_params(write(tmp_path / "p.yaml", "# nothing yet\n")) == {}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope\.yaml: file not found .*--params PATH"):
        load_params(tmp_path / "nope.yaml")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"seed: \xff\xfe\n")
    with pytest.raises(UserError, match=r"p\.yaml: not a UTF-8 text file"):
        load_params(path)


# -- _base_ and _delete_ ------------------------------------------------------------------------------------------


def test_base_file_relative_to_the_including_file(tmp_path: Path) -> None:
    write(tmp_path / "base" / "schedule.yaml",
          "optim:\n  type: SGD\n  lr: 0.01\n  momentum: 0.9\n"
          "param_scheduler:\n  - {type: LinearLR, end: 10}\n  - {type: PolyLR, begin: 10, end: 100}\n")
    child = write(tmp_path / "exp" / "run.yaml",
                  "_base_: ../base/schedule.yaml\noptim:\n  lr: 0.02\nparam_scheduler:\n  - {type: PolyLR, end: 50}\n")
    params = load_params(child)
    assert params["optim"] == {"type": "SGD", "lr": 0.02, "momentum": 0.9}  # dicts merge
    assert params["param_scheduler"] == [{"type": "PolyLR", "end": 50}]  # lists replace
    assert "_base_" not in params


def test_base_list_and_nested_bases(tmp_path: Path) -> None:
    write(tmp_path / "configs" / "_base_" / "models" / "unet.yaml", "model:\n  type: UNet\n  base_channels: 8\n")
    write(tmp_path / "configs" / "_base_" / "models" / "unet_small.yaml",
          "_base_: unet.yaml\nmodel:\n  num_stages: 2\n")  # relative to its own folder
    write(tmp_path / "configs" / "_base_" / "schedule.yaml", "train_cfg:\n  max_iters: 100\n")
    child = write(tmp_path / "configs" / "exp.yaml",
                  "_base_:\n  - _base_/models/unet_small.yaml\n  - _base_/schedule.yaml\nseed: 3\n")
    assert load_params(child) == {
        "model": {"type": "UNet", "base_channels": 8, "num_stages": 2},
        "train_cfg": {"max_iters": 100},
        "seed": 3,
    }


def test_base_can_be_absolute(tmp_path: Path) -> None:
    child = write(tmp_path / "p.yaml", f"_base_: {SHIPPED}\noptim:\n  lr: 6e-5\n")
    params = load_params(child)
    assert params["optim"]["lr"] == 6e-05
    assert params["optim"]["weight_decay"] == load_params(SHIPPED)["optim"]["weight_decay"]


def test_delete_replaces_the_base_mapping(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", "optim:\n  type: SGD\n  lr: 0.01\n  momentum: 0.9\n  nesterov: true\n"
                                  "data:\n  batch_size: 8\n  augment:\n    flip: true\n")
    child = write(tmp_path / "child.yaml",
                  "_base_: base.yaml\noptim:\n  _delete_: true\n  type: AdamW\n  lr: 0.001\n"
                  "data:\n  augment:\n    _delete_: true\n    flip: false\n")
    params = load_params(child)
    assert params["optim"] == {"type": "AdamW", "lr": 0.001}
    assert params["data"] == {"batch_size": 8, "augment": {"flip": False}}


def test_delete_flags_never_reach_the_config(tmp_path: Path) -> None:
    write(tmp_path / "base.yaml", "optim_wrapper:\n  paramwise_cfg:\n    custom_keys:\n      head: {lr_mult: 10}\n")
    child = write(tmp_path / "child.yaml",
                  "_base_: base.yaml\noptim_wrapper:\n  _delete_: true\n  paramwise_cfg:\n    _delete_: true\n"
                  "    norm_decay_mult: 0.0\n  accumulative_counts: 2\n")
    params = load_params(child)
    assert params["optim_wrapper"] == {"paramwise_cfg": {"norm_decay_mult": 0.0}, "accumulative_counts": 2}
    assert "_delete_" not in str(params)


def test_delete_false_merges_and_is_dropped() -> None:
    out = merge({"optim": {"_delete_": False, "lr": 2}}, {"optim": {"type": "SGD", "lr": 1}})
    assert out == {"optim": {"type": "SGD", "lr": 2}}


def test_merge_does_not_modify_its_inputs() -> None:
    base = {"optim": {"type": "SGD", "lr": 1}, "param_scheduler": [{"type": "PolyLR"}]}
    child = {"optim": {"lr": 2}, "param_scheduler": [{"type": "LinearLR"}]}
    merge(child, base)
    assert base == {"optim": {"type": "SGD", "lr": 1}, "param_scheduler": [{"type": "PolyLR"}]}
    assert child == {"optim": {"lr": 2}, "param_scheduler": [{"type": "LinearLR"}]}


def test_base_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "_base_: b.yaml\nseed: 1\n")
    write(tmp_path / "b.yaml", "_base_: a.yaml\ndeterministic: true\n")
    with pytest.raises(UserError, match=r"a\.yaml: `_base_` includes itself \(cycle through .*a\.yaml, .*b\.yaml\)"):
        load_params(tmp_path / "a.yaml")


def test_base_including_itself(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "_base_: ./a.yaml\nseed: 1\n")
    with pytest.raises(UserError, match=r"`_base_` includes itself"):
        load_params(tmp_path / "a.yaml")


def test_same_key_in_two_bases_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "one.yaml", "optim:\n  lr: 0.1\nseed: 1\n")
    write(tmp_path / "two.yaml", "optim:\n  lr: 0.2\n")
    child = write(tmp_path / "child.yaml", "_base_: [one.yaml, two.yaml]\n")
    with pytest.raises(UserError, match=r"child\.yaml: `_base_` files define the same top-level key\(s\) "
                                        r"\['optim'\]; each section may come from one base only"):
        load_params(child)


def test_missing_base_names_the_including_file(tmp_path: Path) -> None:
    child = write(tmp_path / "exp" / "child.yaml", "_base_: ../base/missing.yaml\n")
    with pytest.raises(UserError, match=r"child\.yaml: `_base_` file '\.\./base/missing\.yaml' not found "
                                        r"\(looked for .*missing\.yaml; relative paths start at"):
        load_params(child)


@pytest.mark.parametrize("value", ["5", "{a: 1}", "[base.yaml, 3]", "''"])
def test_base_must_be_paths(tmp_path: Path, value: str) -> None:
    write(tmp_path / "base.yaml", "seed: 1\n")
    child = write(tmp_path / "child.yaml", f"_base_: {value}\n")
    with pytest.raises(UserError, match=r"child\.yaml: `_base_` must be a file path or a list of file paths, got"):
        load_params(child)


# -- flatten and hash ---------------------------------------------------------------------------------------------


def test_flatten_dotted_keys_and_indexed_lists() -> None:
    cfg = {
        "optim": {"type": "AdamW", "lr": 6e-05, "betas": [0.9, 0.999]},
        "param_scheduler": [{"type": "LinearLR", "end": 5}, {"type": "PolyLR"}],
        "custom_hooks": [],
        "default_hooks": {},
        "seed": 1,
        "optim_wrapper": {"clip_grad": None},
    }
    assert flatten(cfg) == {
        "optim.type": "AdamW",
        "optim.lr": 6e-05,
        "optim.betas.0": 0.9,
        "optim.betas.1": 0.999,
        "param_scheduler.0.type": "LinearLR",
        "param_scheduler.0.end": 5,
        "param_scheduler.1.type": "PolyLR",
        "custom_hooks": [],
        "default_hooks": {},
        "seed": 1,
        "optim_wrapper.clip_grad": None,
    }


def test_flatten_with_prefix() -> None:
    assert flatten({"a": {"b": 1}}, "cfg") == {"cfg.a.b": 1}


def test_params_hash_ignores_key_order() -> None:
    a = {"optim": {"type": "AdamW", "lr": 0.003, "betas": [0.9, 0.999]}, "seed": 42, "eval": {"split": "test"}}
    b = {"eval": {"split": "test"}, "seed": 42, "optim": {"betas": [0.9, 0.999], "lr": 0.003, "type": "AdamW"}}
    sections = ("seed", "optim")
    assert params_hash(a, sections) == params_hash(b, sections)
    assert re.fullmatch(r"[0-9a-f]{16}", params_hash(a, sections))


def test_params_hash_depends_on_values_and_sections_only() -> None:
    cfg = {"optim": {"lr": 0.003}, "eval": {"split": "test"}}
    base = params_hash(cfg, ("optim",))
    assert params_hash({**cfg, "eval": {"split": "val"}}, ("optim",)) == base  # other sections do not count
    assert params_hash({**cfg, "optim": {"lr": 6e-05}}, ("optim",)) != base
    assert params_hash({**cfg, "optim": {"lr": 0.0030000001}}, ("optim",)) != base
    # list order is meaningful (schedulers chain in order)
    assert params_hash({"l": [1, 2]}, ("l",)) != params_hash({"l": [2, 1]}, ("l",))


def test_params_hash_is_the_same_for_a_reloaded_file(tmp_path: Path) -> None:
    params = load_params(SHIPPED)
    reloaded = load_params(write(tmp_path / "p.yaml", yaml.safe_dump(params, sort_keys=True)))
    sections = tuple(params)
    assert params_hash(reloaded, sections) == params_hash(params, sections)


def test_delete_without_base_keeps_the_engine_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "model: {type: UNet}\nevaluator: {type: IoUMetric}\n"
                                      "data: {classes: [a, b], dataset: {type: SegDataset}}\n"
                                      "train_cfg:\n  max_iters: 10\nmlflow:\n  _delete_: true\n  experiment_name: x\n"
                                      "default_hooks:\n  _delete_: true\n  logger: {type: LoggerHook, interval: 1}\n")
    params = load_params(path)
    assert "_delete_" not in str(params)
    cfg, _ = check_params(params, data=False)
    assert cfg["mlflow"]["log_checkpoints"] == "last"  # default still filled in
    assert "param_scheduler" in cfg["default_hooks"]  # `_delete_` only replaces what `_base_` files hold
    assert cfg["default_hooks"]["logger"]["interval"] == 1
