"""The shipped presets (configs/): composed from configs/_base_ only, valid, MMSeg's schedule values, and the
ADE20K / Cityscapes presets running a few iterations on generated folders in their real layouts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from engine.cli import main
from engine.config import load_params, parse_yaml
from engine.config.schema import training_hash
from engine.config.validate import resolve
from tests.conftest import ROOT
from tests.engine.seg import folder_fixtures

CONFIGS = ROOT / "configs"
PRESETS = sorted(p for p in CONFIGS.glob("*.yaml"))
BASES = sorted((CONFIGS / "_base_").rglob("*.yaml"))
# The sections each kind of base may hold, so a preset's bases never define the same section twice.
KINDS = {"datasets": {"prepare", "data", "evaluator"}, "models": {"model"},
         "schedules": {"optim", "optim_wrapper", "param_scheduler", "train_cfg", "val_cfg", "test_cfg",
                       "default_hooks"}}


def test_there_are_presets_and_bases() -> None:
    names = {p.stem for p in PRESETS}
    assert {"unet_shapes", "fcn_shapes", "vit_shapes_layer_decay", "convnext_shapes_stage_decay"} <= names
    assert {"ade20k", "cityscapes", "shapes"} <= {p.stem for p in (CONFIGS / "_base_/datasets").glob("*.yaml")}
    assert {f"schedule_{n}k" for n in (20, 40, 80, 160)} <= {p.stem for p in (CONFIGS / "_base_/schedules").glob("*")}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_passes_check(preset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["check", "--params", str(preset.relative_to(ROOT))])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("preset", [p for p in PRESETS if p.stem != "segformer_shapes"], ids=lambda p: p.stem)
def test_presets_start_from_the_bases(preset: Path) -> None:
    raw = parse_yaml(preset.read_text(encoding="utf-8"))
    bases = raw["_base_"]
    assert isinstance(bases, list) and all(b.startswith("_base_/") for b in bases), bases
    assert {Path(b).parts[1] for b in bases if len(Path(b).parts) > 2} == set(KINDS)
    assert "_base_/default_runtime.yaml" in bases


@pytest.mark.parametrize("base", BASES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_each_base_holds_only_its_kind(base: Path) -> None:
    raw = parse_yaml(base.read_text(encoding="utf-8"))
    kind = base.parent.name
    assert "_base_" not in raw
    if kind in KINDS:
        assert set(raw) <= KINDS[kind]


@pytest.mark.parametrize("model", sorted((CONFIGS / "_base_/models").glob("*.yaml")), ids=lambda p: p.stem)
def test_each_model_base_makes_a_valid_shapes_config(model: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bases = [CONFIGS / "_base_/datasets/shapes.yaml", model, CONFIGS / "_base_/schedules/schedule_shapes_600.yaml",
             CONFIGS / "_base_/default_runtime.yaml"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"_base_": [str(b) for b in bases]}), encoding="utf-8")
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 0, result.output


def test_unet_shapes_is_the_shipped_params() -> None:
    assert resolve(load_params(CONFIGS / "unet_shapes.yaml")) == resolve(load_params(ROOT / "params.yaml"))


@pytest.mark.parametrize("thousands", [20, 40, 80, 160])
def test_schedules_have_mmsegs_values(thousands: int) -> None:
    n = thousands * 1000
    raw = parse_yaml((CONFIGS / f"_base_/schedules/schedule_{thousands}k.yaml").read_text(encoding="utf-8"))
    assert raw["optim"] == {"type": "SGD", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005}
    assert raw["param_scheduler"] == [{"type": "PolyLR", "eta_min": 1e-4, "power": 0.9, "begin": 0, "end": n,
                                       "by_epoch": False}]
    assert raw["train_cfg"] == {"type": "IterBasedTrainLoop", "max_iters": n, "val_interval": n // 10}
    assert raw["default_hooks"]["checkpoint"]["interval"] == n // 10
    assert raw["default_hooks"]["logger"]["interval"] == 50


def test_a_user_selects_a_preset_without_copying_it(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(f"_base_: {CONFIGS / 'fcn_shapes.yaml'}\noptim: {{lr: 0.01}}\n", encoding="utf-8")
    cfg = resolve(load_params(params))
    preset = resolve(load_params(CONFIGS / "fcn_shapes.yaml"))
    assert cfg["optim"] == preset["optim"] | {"lr": 0.01}
    assert {k: v for k, v in cfg.items() if k != "optim"} == {k: v for k, v in preset.items() if k != "optim"}
    assert training_hash(cfg) != training_hash(preset)


def _run_stages(work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    for stage in ("prepare", "train", "eval"):
        done = subprocess.run([sys.executable, "-m", f"stages.{stage}"], cwd=work, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, f"{stage}:\n{done.stderr[-3000:]}"
    return json.loads((work / "metrics/eval.json").read_text(encoding="utf-8"))


FEW_ITERATIONS = {
    "data": {"batch_size": 2, "num_workers": 0},
    "train_cfg": {"max_iters": 2, "val_interval": 2},
    "default_hooks": {"checkpoint": {"interval": 2}, "logger": {"interval": 1}},
}


def _shortened(cfg: dict) -> list[dict]:
    """The preset's schedulers, same types and arguments, squeezed into FEW_ITERATIONS (a warm-up takes one)."""
    n, short = cfg["train_cfg"]["max_iters"], FEW_ITERATIONS["train_cfg"]["max_iters"]
    squeeze = {0: 0, n: short}
    return [s | {"begin": squeeze.get(s["begin"], 1), "end": squeeze.get(s["end"], 1)} for s in cfg["param_scheduler"]]


def _scaled(pipeline: list[dict], factor: int) -> list[dict]:
    """The same transforms with every size (`scale`, `crop_size`, `size`) divided by `factor`."""
    sizes = ("scale", "crop_size", "size")
    return [{k: [v // factor for v in value] if k in sizes else value for k, value in step.items()}
            for step in pipeline]


@pytest.mark.slow
@pytest.mark.parametrize(("preset", "layout", "model"), [
    ("vit_ade20k_160k", "ade20k", {"img_size": 8, "patch_size": 4}),
    ("fcn_cityscapes_80k", "cityscapes", {}),
])
def test_real_layout_presets_run_a_few_iterations(tmp_path: Path, preset: str, layout: str, model: dict) -> None:
    """The preset as shipped, on a generated folder in the dataset's own layout, with only the length, the image
    sizes (its pipelines' sizes divided by 64) and the batch made small."""
    source = tmp_path / "source"
    getattr(folder_fixtures, layout)(source)
    work = tmp_path / "project"
    work.mkdir()
    shipped = load_params(CONFIGS / f"{preset}.yaml")
    dataset = shipped["data"]["dataset"]
    params = {"_base_": str(CONFIGS / f"{preset}.yaml"), "prepare": {"source": str(source)}, "model": model,
              "param_scheduler": _shortened(shipped)} | FEW_ITERATIONS
    params["data"] = params["data"] | {"dataset": {"pipeline": _scaled(dataset["pipeline"], 64),
                                                   "test_pipeline": _scaled(dataset["test_pipeline"], 64)}}
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    result = _run_stages(work)
    meta = json.loads((work / f"data/{layout}/meta.json").read_text(encoding="utf-8"))
    assert len(meta["classes"]) == {"ade20k": 150, "cityscapes": 19}[layout]
    assert 0 <= result["mIoU"] <= 100 and result["split"] == "test"
    assert json.loads((work / "metrics/train.json").read_text(encoding="utf-8"))["iterations"] == 2
