"""End to end through the real `dvc` CLI in a temp git repo: stages rerun only when their own params change."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import BIN, Project, make_project

pytestmark = pytest.mark.slow

MODEL_NAME = "shapes-e2e"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str]:
    """The shared baseline, with the final weights registered as an MLflow model."""
    project = make_project(tmp_path_factory.mktemp("baseline"), {"mlflow": {"register_model": MODEL_NAME}})
    output = project.dvc("repro").stdout
    project.commit("baseline results")
    return project, output


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def runs(project) -> list:
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name(project.params()["mlflow"]["experiment_name"])
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]) if exp else []


def test_repro_runs_all_stages_once_then_nothing(baseline):
    project, first = baseline
    assert ran_stages(first) == ["prepare", "train", "eval"]
    for out in ("data/shapes/meta.json", "models/model.safetensors", "metrics/train.json", "metrics/eval.json",
                "plots/train.csv", "plots/val.csv"):
        assert (project.path / out).is_file(), out
    meta = json.loads((project.path / "data/shapes/meta.json").read_text())
    assert meta["classes"] == ["background", "circle", "square", "triangle"]
    result = json.loads((project.path / "metrics/eval.json").read_text())
    assert set(result) >= {"mIoU", "mAcc", "aAcc", "per_class"} and 0 <= result["mIoU"] <= 100
    assert set(result["per_class"]["circle"]) == {"IoU", "Acc"}
    assert json.loads((project.path / "metrics/train.json").read_text())["iterations"] == 6

    # The eval metrics landed on the training's run, in the store at the project root.
    (run,) = runs(project)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test/mIoU"] == result["mIoU"]
    assert run.data.params["train_cfg.max_iters"] == "6"
    # the fixture committed the results after the run: the run was made at the commit before
    assert run.data.tags["git.commit"] == project.run("git", "rev-parse", "HEAD~1").stdout.strip()
    assert [m.step for m in MlflowClient(project.store).get_metric_history(run.info.run_id, "train/loss")] == \
        [1, 2, 3, 4, 5, 6]

    client = MlflowClient(project.store)
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/iter_6"]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "config")} >= {
        "config/params.yaml", "config/resolved_config.yaml", "config/hook_order.txt"}
    assert run.data.tags["params_hash"] and run.data.tags["data_hash"] and run.data.tags["git.dirty"] == "false"
    _assert_run_contents(project, client, run)

    second = project.dvc("repro")
    assert ran_stages(second.stdout) == []
    assert "up to date" in second.stdout


def _files(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        out |= _files(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def _assert_run_contents(project: Project, client: MlflowClient, run) -> None:
    """Every metric and artifact the run should hold after `dvc repro` (train, then eval on the same run)."""
    import mlflow
    import mlflow.pytorch
    import torch
    from safetensors.torch import load_file

    from engine.seg.models.unet import UNet

    assert {"train/loss", "train/loss_ce", "train/lr", "train/momentum", "train/grad_norm", "train/time",
            "train/data_time", "train/throughput", "val/mIoU", "test/mIoU"} <= set(run.data.metrics)
    files = _files(client, run.info.run_id)
    assert {"config/params.yaml", "config/resolved_config.yaml", "config/hook_order.txt", "config/dvc.lock",
            "schedule/lr_schedule.png", "test/per_class.md", "test/per_class.json", "test/overlays/sample_0.png",
            "model/MLmodel", "checkpoints/iter_6/model.safetensors"} <= files, sorted(files)

    # dvc.lock as the eval stage found it: DVC had written the train stage's entry (the model's hash) and not yet
    # the eval entry, which it writes when eval ends.
    logged = yaml.safe_load(Path(client.download_artifacts(run.info.run_id, "config/dvc.lock")).read_text())
    final = yaml.safe_load((project.path / "dvc.lock").read_text())
    assert set(logged["stages"]) == {"prepare", "train"} and set(final["stages"]) == {"prepare", "train", "eval"}
    assert logged["stages"]["train"] == final["stages"]["train"]

    # The registered model is the final weights: same predictions as models/model.safetensors in a fresh UNet.
    (version,) = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert version.run_id == run.info.run_id
    mlflow.set_tracking_uri(project.store)
    try:
        loaded = mlflow.pytorch.load_model(f"models:/{MODEL_NAME}/{version.version}")
    finally:
        mlflow.set_tracking_uri(None)
    params = project.params()
    fresh = UNet(num_classes=4, **{k: v for k, v in params["model"].items() if k != "type"})
    fresh.load_state_dict(load_file(str(project.path / "models/model.safetensors")))
    batch = (torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.zeros(2, 32, 32).long())
    with torch.no_grad():
        assert torch.equal(loaded.eval()(batch, mode="predict"), fresh.eval()(batch, mode="predict"))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("optim.lr", "0.001", ["train", "eval"]),
        ("eval.split", "val", ["eval"]),
        ("prepare.num_test", "12", ["prepare", "train", "eval"]),
    ],
)
def test_only_stages_reading_a_changed_param_rerun(project, key, value, expected):
    params = project.params()
    section, name = key.split(".")
    params[section][name] = type(params[section][name])(value) if section != "eval" else value
    project.write_params(params)
    assert ran_stages(project.dvc("repro").stdout) == expected


@pytest.mark.parametrize(("path", "expected"), [
    ("engine/cli/compare_runs.py", []),  # reporting code does not shape the weights
    ("engine/loops.py", ["train", "eval"]),
])
def test_only_code_that_shapes_training_retrains(project, path, expected):
    with (project.path / path).open("a", encoding="utf-8") as handle:
        handle.write("\n# edited\n")
    assert ran_stages(project.dvc("repro").stdout) == expected


def test_exp_run_set_param_reaches_optimizer_as_float(project):
    out = project.dvc("exp", "run", "-S", "optim.lr=6e-5")
    assert ran_stages(out.stdout) == ["train", "eval"]
    assert "lr: 6e-05" in (project.path / "params.yaml").read_text()  # what DVC wrote: YAML 1.2, a string to PyYAML
    baseline, exp_run = runs(project)
    assert exp_run.data.params["optim.lr"] == "6e-05"
    assert exp_run.data.tags.get("dvc.exp_name") and exp_run.info.run_name == exp_run.data.tags["dvc.exp_name"]
    history = MlflowClient(project.store).get_metric_history(exp_run.info.run_id, "train/lr")
    lrs = {m.step: m.value for m in history}
    # LinearLR (begin 0, end 2) reaches the base lr at iteration 2; PolyLR (begin 2, end 6: T = 3) then decays
    # linearly to 0 at iteration 6.
    assert lrs[1] == pytest.approx(6e-05 * 1e-6, rel=1e-9)
    assert lrs[2] == pytest.approx(6e-05, rel=1e-12)
    assert lrs[4] == pytest.approx(6e-05 * (1 - 1 / 3), rel=1e-12)
    assert lrs[6] == 0.0
    assert "test/mIoU" in exp_run.data.metrics
    shown = project.dvc("exp", "show", "--no-pager", "--csv").stdout
    assert "6e-05" in shown
    # The README's terminal-sized form: only what differs, no hashes of outputs or per-class columns.
    narrow = project.dvc("exp", "show", "--no-pager", "--only-changed", "--drop",
                         "Created|models/.*|.*per_class.*").stdout
    assert "optim.lr" in narrow and "6e-05" in narrow and "models/" not in narrow and "Created" not in narrow
    assert max(len(line) for line in narrow.splitlines()) <= 100
    project.dvc("plots", "show")
    page = (project.path / "dvc_plots" / "index.html").read_text()
    assert all(title in page for title in ("Training loss", "Learning rate", "Validation mIoU"))


def test_temp_experiment_logs_to_the_project_store(project):
    """`--temp` runs in a throwaway copy under .dvc/tmp: the run must still land in the project's store."""
    project.dvc("exp", "run", "--temp", "-S", "optim.lr=0.002", "-n", "tmp-lr")
    assert not list((project.path / ".dvc" / "tmp").rglob("mlflow.db"))
    found = [r for r in runs(project) if r.data.params["optim.lr"] == "0.002"]
    assert len(found) == 1 and found[0].info.run_name == "tmp-lr"
    assert "test/mIoU" in found[0].data.metrics  # eval, also in the temp copy, logged onto the same run


def test_run_cache_restore_makes_no_run_and_compare_names_the_earlier_one(project):
    """Params back to a trained value at a new commit: DVC restores `train` from its run-cache, no training and no
    new MLflow run happen, and `trainline compare` / `report` find the earlier run by its params_hash tag."""
    baseline_params = project.params()
    (first,) = runs(project)
    changed = project.params()
    changed["optim"]["lr"] = 0.001
    project.write_params(changed)
    project.dvc("repro")
    project.commit("lr 0.001")
    project.write_params(baseline_params)
    restored = project.dvc("repro").stdout
    assert ran_stages(restored) == ["eval"] or ran_stages(restored) == []
    assert "Stage 'train' is cached - skipping run" in restored
    assert len(runs(project)) == 2  # the baseline's and the lr 0.001 one: none for the restore

    trainline = str(BIN / "trainline")
    compared = project.run(trainline, "compare", "--format", "csv")
    header = compared.stdout.splitlines()[0].split(",")
    assert header[-1] == first.info.run_name  # the earlier run, after the commit's own baseline run
    assert f"were trained by the earlier run {first.info.run_name} (id {first.info.run_id[:8]}" in compared.stderr
    assert f"params_hash {first.data.tags['params_hash']}" in compared.stderr
    reported = project.run(trainline, "report").stdout
    assert f"trained by MLflow run {first.info.run_name} (id {first.info.run_id[:8]}" in reported
    assert "DVC restored the train stage from its run-cache" in reported
