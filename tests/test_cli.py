"""The `trainline` command: check, schedule, param-groups, report; user errors as `error:` lines and exit code 2."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engine import build
from engine.cli import main
from engine.config import load_params, parse_yaml
from engine.config.validate import check_params
from tests.conftest import SHIPPED

TRAINLINE = Path(sys.executable).parent / "trainline"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Four different mistakes, each in its own place.
BAD = {
    "optm": {"lr": 0.1},
    "data": {"batch_sise": 8},
    "optim": {"lr": "6e-5"},
    "param_scheduler": [{"type": "LinearLR", "start_factor": 1.0e-6, "begin": 0, "end": 50},
                        {"type": "PolyLR", "begin": 50, "end": 900}],
}
BAD_KEYS = ["optm", "data.batch_sise", "optim.lr", "param_scheduler.1.end"]

# Warm-up then polynomial decay, with values that make every term of the closed forms count.
BASE_LR, START, WARMUP, MAX_ITERS, POWER, ETA_MIN = 6e-05, 0.001, 10, 60, 0.9, 1e-06
SCHEDULE = {
    "optim": {"lr": BASE_LR, "betas": [0.95, 0.999]},
    "param_scheduler": [
        {"type": "LinearLR", "start_factor": START, "begin": 0, "end": WARMUP},
        {"type": "PolyLR", "power": POWER, "eta_min": ETA_MIN, "begin": WARMUP, "end": MAX_ITERS},
    ],
    "train_cfg": {"max_iters": MAX_ITERS, "val_interval": 20},
}


def expected_lr(row: int, base_lr: float = BASE_LR) -> float:
    """MMEngine closed forms (T = end - begin - 1 for Linear and Poly) for the LR row `row` (1-based) trains with,
    for a group starting at `base_lr` (PolyLR decays every group to the same eta_min)."""
    t = row - 1  # scheduler steps taken before this iteration's optimizer step
    if t < WARMUP:
        total = WARMUP - 0 - 1
        return base_lr * (START + (1.0 - START) * min(t, total) / total)
    total, t = MAX_ITERS - WARMUP - 1, t - WARMUP
    return ETA_MIN + (base_lr - ETA_MIN) * (1 - min(t, total) / total) ** POWER


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error: ")]


# -- help ---------------------------------------------------------------------------------------------------------


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("check", "schedule", "param-groups", "report"):
        assert command in result.output


@pytest.mark.parametrize("command", ["check", "schedule", "param-groups", "report"])
def test_command_help(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "--params" in result.output


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.startswith("trainline, version ")


def test_help_does_not_import_torch() -> None:
    code = ("import sys\nfrom click.testing import CliRunner\nfrom engine.cli import main\n"
            "assert CliRunner().invoke(main, ['check', '--help']).exit_code == 0\n"
            "assert 'torch' not in sys.modules, 'torch imported for --help'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- check --------------------------------------------------------------------------------------------------------


def test_check_ok(write_params: Callable[..., Path]) -> None:
    path = write_params()
    result = invoke("check", "--params", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: ok\n"


def test_check_shipped_params() -> None:
    result = invoke("check", "--params", str(SHIPPED))
    assert result.exit_code == 0, result.output


def test_check_reports_every_problem_on_its_own_line(write_params: Callable[..., Path]) -> None:
    result = invoke("check", "--params", str(write_params(BAD)))
    assert result.exit_code == 2
    lines = error_lines(result.stderr)
    assert [line.split(":", 2)[1].strip() for line in lines] == BAD_KEYS
    assert lines[0].startswith("error: optm: unknown section (did you mean 'optim'?)")
    assert lines[2] == "error: optim.lr: must be a number, got '6e-5' (remove the quotes to make it a number)"
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_check_in_a_real_process(write_params: Callable[..., Path], tmp_path: Path) -> None:
    bad = write_params(BAD, name="bad.yaml")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([str(TRAINLINE), "check", "--params", bad.name], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert lines == error_lines(result.stderr)  # nothing but the problems
    assert [line.split(":", 2)[1].strip() for line in lines] == BAD_KEYS


def test_check_prints_the_resolved_config(write_params: Callable[..., Path]) -> None:
    path = write_params({"optim": {"lr": 6e-05}})
    result = invoke("check", "--params", str(path), "--print")
    assert result.exit_code == 0, result.output
    printed = parse_yaml(result.stdout)
    resolved, _ = check_params(load_params(path))
    assert printed == resolved
    assert printed["optim"]["lr"] == 6e-05
    assert set(printed["default_hooks"]) >= {"logger", "param_scheduler", "checkpoint"}


def test_check_missing_params_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = invoke("check", "--params", str(missing))
    assert result.exit_code == 2
    assert error_lines(result.stderr) == [
        f"error: {missing}: file not found (expected a params YAML file; pass --params PATH)"]


def test_check_default_params_file_is_in_the_working_directory(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("check")
    assert result.exit_code == 2
    assert error_lines(result.stderr) == [
        "error: params.yaml: file not found (expected a params YAML file; pass --params PATH)"]
    (tmp_path / "params.yaml").write_text(SHIPPED.read_text(encoding="utf-8"), encoding="utf-8")
    result = invoke("check")
    assert result.exit_code == 0, result.output


def test_check_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("seed: 1\noptim:\n  lr: 0.1\n   type: SGD\n", encoding="utf-8")
    result = invoke("check", "--params", str(path))
    assert result.exit_code == 2
    assert error_lines(result.stderr) == [f"error: {path}:4: not valid YAML (mapping values are not allowed here)"]
    assert "Traceback" not in result.output


def test_check_warning_keeps_exit_zero(write_params: Callable[..., Path]) -> None:
    path = write_params({"param_scheduler": [{"type": "LinearLR", "end": 50},
                                             {"type": "PolyLR", "begin": 60, "end": 600}]})
    result = invoke("check", "--params", str(path))
    assert result.exit_code == 0, result.output
    assert "param_scheduler: no scheduler covers iterations 50-59" in result.stderr


# -- schedule -----------------------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def test_schedule_csv_matches_the_closed_forms(write_params: Callable[..., Path], tmp_path: Path) -> None:
    out = tmp_path / "lr.csv"
    result = invoke("schedule", "--params", str(write_params(SCHEDULE)), "--csv", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").splitlines()[0] == "iter,lr,momentum"
    rows = read_csv(out)
    assert [int(r["iter"]) for r in rows] == list(range(1, MAX_ITERS + 1))
    for row in (1, 2, 5, WARMUP, WARMUP + 1, WARMUP + 2, 30, MAX_ITERS - 1, MAX_ITERS):
        assert float(rows[row - 1]["lr"]) == pytest.approx(expected_lr(row), rel=1e-9, abs=1e-15), row
    assert float(rows[0]["lr"]) == pytest.approx(BASE_LR * START)
    assert float(rows[WARMUP - 1]["lr"]) == pytest.approx(BASE_LR)  # warm-up reaches the base LR
    assert float(rows[-1]["lr"]) == pytest.approx(ETA_MIN)  # the decay ends at eta_min
    assert {float(r["momentum"]) for r in rows} == {0.95}  # AdamW's betas[0]
    assert all(math.isfinite(float(r["lr"])) for r in rows)


def test_schedule_lr_is_the_base_lr_when_one_group_carries_a_multiplier(write_params: Callable[..., Path],
                                                                         tmp_path: Path) -> None:
    # Every UNet parameter name contains "e": one group at lr * 0.1. `lr` stays optim.lr as scheduled (MMEngine's
    # base_param_settings); the group's own lr is the lr/0 column.
    out = tmp_path / "lr.csv"
    merged = {**SCHEDULE, "optim_wrapper": {"paramwise_cfg": {"custom_keys": {"e": {"lr_mult": 0.1}}}}}
    result = invoke("schedule", "--params", str(write_params(merged)), "--csv", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").splitlines()[0] == "iter,lr,momentum,lr/0"
    rows = read_csv(out)
    for row in (1, 2, WARMUP, WARMUP + 1, 30, MAX_ITERS):
        assert float(rows[row - 1]["lr"]) == pytest.approx(expected_lr(row), rel=1e-9, abs=1e-15), row
        assert float(rows[row - 1]["lr/0"]) == pytest.approx(expected_lr(row, 0.1 * BASE_LR), rel=1e-9, abs=1e-15), row
    assert float(rows[0]["lr"]) == pytest.approx(BASE_LR * START, rel=1e-12)


def test_schedule_of_the_shipped_params(tmp_path: Path) -> None:
    out = tmp_path / "lr.csv"
    result = invoke("schedule", "--params", str(SHIPPED), "--csv", str(out))
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    shipped = load_params(SHIPPED)
    assert len(rows) == shipped["train_cfg"]["max_iters"]
    base = shipped["optim"]["lr"]
    assert float(rows[0]["lr"]) == pytest.approx(base * 1e-6)
    warmup_end = shipped["param_scheduler"][0]["end"]  # LinearLR reaches the base lr at its last step
    assert float(rows[warmup_end - 1]["lr"]) == pytest.approx(base)
    assert float(rows[-1]["lr"]) == 0.0


def test_schedule_prints_csv_without_outputs(write_params: Callable[..., Path]) -> None:
    result = invoke("schedule", "--params", str(write_params(SCHEDULE)))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "iter,lr,momentum"
    assert len(lines) == MAX_ITERS + 1


def test_schedule_plot_is_a_png(write_params: Callable[..., Path], tmp_path: Path) -> None:
    png = tmp_path / "plots" / "lr.png"
    result = invoke("schedule", "--params", str(write_params(SCHEDULE)), "--plot", str(png))
    assert result.exit_code == 0, result.output
    data = png.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5000
    assert result.stdout == ""


def test_schedule_with_bad_params_writes_nothing(write_params: Callable[..., Path], tmp_path: Path) -> None:
    out, png = tmp_path / "lr.csv", tmp_path / "lr.png"
    result = invoke("schedule", "--params", str(write_params(BAD)), "--csv", str(out), "--plot", str(png))
    assert result.exit_code == 2
    assert len(error_lines(result.stderr)) == len(BAD_KEYS)
    assert not out.exists() and not png.exists()


# -- param-groups -------------------------------------------------------------------------------------------------

VIT = {
    "model": {"_delete_": True, "type": "ViTSegmenter", "embed_dims": 32, "num_layers": 2, "num_heads": 2},
    "optim": {"type": "AdamW", "lr": 6e-05, "weight_decay": 0.01},
    "optim_wrapper": {"paramwise_cfg": {"custom_keys": {
        "pos_embed": {"decay_mult": 0.0}, "cls_token": {"decay_mult": 0.0}, "norm": {"decay_mult": 0.0}}}},
}


def test_param_groups_json(write_params: Callable[..., Path]) -> None:
    path = write_params(VIT)
    result = invoke("param-groups", "--params", str(path), "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_name = {r["name"]: r for r in rows}
    assert len(by_name) == len(rows)  # each parameter once
    model = build.build_model(check_params(load_params(path))[0])
    assert set(by_name) == {name for name, p in model.named_parameters() if p.requires_grad}
    assert all(set(r) == {"name", "lr", "weight_decay", "rule"} for r in rows)
    assert all(r["lr"] == 6e-05 for r in rows)
    assert by_name["backbone.pos_embed"] == {"name": "backbone.pos_embed", "lr": 6e-05, "weight_decay": 0.0,
                                             "rule": "custom_keys['pos_embed']"}
    assert by_name["backbone.cls_token"]["weight_decay"] == 0.0
    assert by_name["backbone.norm.weight"]["weight_decay"] == 0.0
    assert by_name["backbone.norm.weight"]["rule"] == "custom_keys['norm']"
    attn = by_name["backbone.layers.0.attn.qkv.weight"]
    assert (attn["weight_decay"], attn["rule"]) == (0.01, "default")
    # the encoder's pre-norms are ln1/ln2, which a `norm` key does not match
    assert by_name["backbone.layers.1.ln1.weight"]["weight_decay"] == 0.01


def test_param_groups_table(write_params: Callable[..., Path]) -> None:
    result = invoke("param-groups", "--params", str(write_params(VIT)))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["parameter", "lr", "weight_decay", "rule"]
    pos = next(line for line in lines if line.startswith("backbone.pos_embed "))
    assert pos.split() == ["backbone.pos_embed", "6e-05", "0", "custom_keys['pos_embed']"]


def test_param_groups_with_bad_params(write_params: Callable[..., Path]) -> None:
    result = invoke("param-groups", "--params", str(write_params({"optim": {"weight_decy": 0.1}})), "--json")
    assert result.exit_code == 2
    assert error_lines(result.stderr)[0].startswith("error: optim.weight_decy: AdamW has no argument 'weight_decy'")
    assert result.stdout == ""


# -- report -------------------------------------------------------------------------------------------------------


def test_report_without_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("report", "--params", str(SHIPPED))
    assert result.exit_code == 2
    assert error_lines(result.stderr) == ["error: metrics/eval.json: not found; run `dvc repro` first"]


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"])
def test_check_says_an_empty_params_file_is_empty(tmp_path: Path, text: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    result = invoke("check", "--params", str(path))
    assert result.exit_code == 2
    assert error_lines(result.output) == [f"error: {path}: the file is empty; write its sections (see "
                                          f"docs/config.md) or pass --params with another file"]


def test_check_does_not_pay_for_torch_compile_machinery(tmp_path: Path) -> None:
    # Constructing a torch optimizer imports torch._dynamo (over a second); the trial build in check must not.
    code = ("import sys\nfrom engine.cli import main\nsys.argv = ['trainline', 'check']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, None), exc.code\n"
            "print('dynamo' if 'torch._dynamo' in sys.modules else 'no dynamo')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=SHIPPED.parent, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "no dynamo", out.stdout + out.stderr


# -- schedules that need the epoch length (the tiny dataset: 16 training images, batch 4 -> 4 iterations an epoch) --


def tiny_data() -> dict[str, object]:
    from tests.engine.fixtures import IMAGE_SIZE, NUM_TEST, NUM_TRAIN, NUM_VAL, dataset_root

    return {"prepare": {"image_size": IMAGE_SIZE, "num_train": NUM_TRAIN, "num_val": NUM_VAL, "num_test": NUM_TEST},
            "data": {"root": str(dataset_root()), "batch_size": 4, "val_batch_size": 4}}


EPOCHS_3 = {"_delete_": True, "type": "EpochBasedTrainLoop", "max_epochs": 3, "val_interval": 1}


def linear_lr(row: int, last: int, start: float = 0.1) -> float:
    """LinearLR at 1-based row `row` over [0, last + 1), from the shipped base lr."""
    return 0.005 * (start + (1 - start) * min(row - 1, last) / last)


def schedule_rows(path: Path, tmp_path: Path) -> list[dict[str, str]]:
    out = tmp_path / "lr.csv"
    result = invoke("schedule", "--params", str(path), "--csv", str(out))
    assert result.exit_code == 0, result.output
    return read_csv(out)


def test_converted_epoch_scheduler_in_an_iteration_loop(write_params: Callable[..., Path], tmp_path: Path) -> None:
    path = write_params({**tiny_data(), "train_cfg": {"max_iters": 20, "val_interval": 10},
                         "param_scheduler": [{"type": "LinearLR", "start_factor": 0.1, "by_epoch": True, "begin": 0,
                                              "end": 2, "convert_to_iter_based": True}]})
    assert invoke("check", "--params", str(path)).exit_code == 0
    rows = schedule_rows(path, tmp_path)
    assert len(rows) == 20
    for row in (1, 2, 4, 8, 9, 20):  # 2 epochs = 8 iterations: T = 7
        assert float(rows[row - 1]["lr"]) == pytest.approx(linear_lr(row, 7), rel=1e-12), row


def test_converted_end_beyond_max_iters_is_refused(write_params: Callable[..., Path]) -> None:
    path = write_params({**tiny_data(), "train_cfg": {"max_iters": 20, "val_interval": 10},
                         "param_scheduler": [{"type": "LinearLR", "by_epoch": True, "end": 6,
                                              "convert_to_iter_based": True}]})
    result = invoke("check", "--params", str(path))
    assert result.exit_code == 2
    assert error_lines(result.stderr) == [
        "error: param_scheduler.0.end: 6 epochs = 24 iterations (convert_to_iter_based, 4 per epoch) is beyond "
        "train_cfg.max_iters = 20; set param_scheduler.0.end <= 5 or raise train_cfg.max_iters"]


def test_iteration_scheduler_without_end_in_an_epoch_loop(write_params: Callable[..., Path], tmp_path: Path) -> None:
    path = write_params({**tiny_data(), "train_cfg": EPOCHS_3,
                         "param_scheduler": [{"type": "LinearLR", "start_factor": 0.1, "by_epoch": False,
                                              "begin": 0}]})
    result = invoke("check", "--params", str(path))
    assert result.exit_code == 0, result.output
    rows = schedule_rows(path, tmp_path)
    assert len(rows) == 12
    for row in (1, 2, 6, 12):  # end = 3 epochs * 4 = 12 iterations: T = 11
        assert float(rows[row - 1]["lr"]) == pytest.approx(linear_lr(row, 11), rel=1e-12), row


def test_one_cycle_too_short_after_conversion_is_one_error_line(write_params: Callable[..., Path]) -> None:
    entry = {"type": "OneCycleLR", "eta_max": 0.01, "total_steps": 2, "convert_to_iter_based": True}
    path = write_params({**tiny_data(), "train_cfg": EPOCHS_3, "param_scheduler": [entry]})
    for command in ("check", "schedule"):
        result = invoke(command, "--params", str(path))
        assert result.exit_code == 2, command
        assert error_lines(result.stderr) == [
            "error: param_scheduler.0.total_steps: OneCycleLR: total_steps=2 epochs = 8 iterations "
            "(convert_to_iter_based, 4 per epoch) is shorter than the window [0, 12); it would fail at step 9. "
            "Raise total_steps or lower end"], command
        assert "Traceback" not in result.output
    ok = write_params({**tiny_data(), "train_cfg": EPOCHS_3, "param_scheduler": [{**entry, "total_steps": 3}]},
                      name="ok.yaml")
    assert invoke("check", "--params", str(ok)).exit_code == 0


def test_removed_param_scheduler_hook_with_schedulers_is_refused(write_params: Callable[..., Path]) -> None:
    result = invoke("check", "--params", str(write_params({"default_hooks": {"param_scheduler": None}})))
    assert result.exit_code == 2
    assert error_lines(result.stderr) == [
        "error: default_hooks.param_scheduler: removed, so the param_scheduler list would never be applied; keep "
        "the hook or set param_scheduler: []"]
    empty = write_params({"default_hooks": {"param_scheduler": None}, "param_scheduler": []}, name="empty.yaml")
    assert invoke("check", "--params", str(empty)).exit_code == 0


def test_check_names_bad_mlflow_keys(write_params: Callable[..., Path]) -> None:
    path = write_params({"mlflow": {"register_model": 3, "system_metrics": "maybe"}})
    result = invoke("check", "--params", str(path))
    assert result.exit_code == 2
    assert error_lines(result.stderr) == ["error: mlflow.system_metrics: must be true/false, got 'maybe'",
                                          "error: mlflow.register_model: must be a string or null, got 3"]
