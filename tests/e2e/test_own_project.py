"""A user's own repository adopting Trainline: `trainline init`, their own model/data/metric by dotted path, the real
`dvc repro` / `dvc exp run` (workspace, temp and queued copies) and the MLflow store in *their* repo root.

Two toys of other tasks with different batch formats: a digits classifier (tuples, a prepare callable) and a
next-token model (dict batches, a custom collate, data already in the repo: `prepare: null`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import BIN, Project

pytestmark = pytest.mark.slow

TOYS = Path(__file__).resolve().parents[1] / "toys"


def own_repo(tmp_path: Path, package: str) -> Project:
    """A fresh git repo holding only the user's package (no copy of Trainline's engine or stages)."""
    path = tmp_path / f"{package}-project"
    path.mkdir()
    shutil.copytree(TOYS / package, path / package, ignore=shutil.ignore_patterns("__pycache__"))
    project = Project(path)
    project.run("git", "init", "-q")
    project.commit("my package")
    return project


def trainline(project: Project, *args: str, check: bool = True):
    return project.run(str(BIN / "trainline"), *args, check=check)


def edit_params(project: Project, edit) -> None:
    params = project.params()
    edit(params)
    project.write_params(params)


def mlflow_runs(project: Project) -> list:
    assert (project.path / "mlflow.db").is_file()
    client = MlflowClient(project.store)
    experiment = client.get_experiment_by_name(project.path.name)
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def ran(output: str) -> list[str]:
    return [s for s in ("prepare", "train", "eval") if f"Running stage '{s}'" in output]


def test_digits_classifier_in_its_own_repo(tmp_path):
    project = own_repo(tmp_path, "digits")
    out = trainline(project, "init", "--model", "digits.model.Net", "--dataset", "digits.data.Digits",
                    "--evaluator", "digits.metric.Accuracy", "--prepare", "digits.data.make_digits",
                    "--data-root", "data/digits").stdout
    assert "initialised DVC" in out and "next:" in out
    assert "trainline stage train" in (project.path / "dvc.yaml").read_text()
    # The generated file names the user's classes; it only misses what their signatures require.
    result = trainline(project, "check", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: model.num_classes: required by Net; set it here or set data.classes (it is then offered)"]

    def point(params: dict) -> None:
        params["prepare"].update(per_class=30)
        params["data"]["classes"] = [str(i) for i in range(10)]
        params["data"].update(batch_size=32, val_batch_size=50)
        params["model"]["hidden"] = 32
        params["optim"]["lr"] = 0.01
        params["param_scheduler"] = [{"type": "LinearLR", "start_factor": 0.1, "begin": 0, "end": 5},
                                     {"type": "CosineAnnealingLR", "begin": 5}]
        params["train_cfg"].update(max_iters=40, val_interval=20)
        params["default_hooks"]["checkpoint"]["interval"] = 20

    edit_params(project, point)
    assert trainline(project, "check").stdout.strip() == "params.yaml: ok"
    project.commit("trainline set up")

    out = project.dvc("repro").stdout
    assert ran(out) == ["prepare", "train", "eval"]
    result = json.loads((project.path / "metrics/eval.json").read_text())
    assert set(result) == {"accuracy", "split"} and result["accuracy"] >= 60, result
    train = json.loads((project.path / "metrics/train.json").read_text())
    assert train["iterations"] == 40 and "accuracy" in train
    assert (project.path / "plots/val.csv").read_text().splitlines()[0] == "step,accuracy"
    [run] = mlflow_runs(project)
    assert run.data.metrics["test/accuracy"] == result["accuracy"]
    assert "train/acc" in run.data.metrics  # a non-loss value the model returned is logged, not summed
    assert run.data.tags["trainline.headline"] == "accuracy"
    assert run.data.params["model.type"] == "digits.model.Net"

    project.commit("results")
    out = project.dvc("exp", "run", "-S", "optim.lr=1e-3").stdout
    assert ran(out) == ["train", "eval"]
    runs = mlflow_runs(project)
    assert len(runs) == 2 and runs[1].data.params["optim.lr"] == "0.001"
    assert "test/accuracy" in runs[1].data.metrics


def test_next_token_model_with_ready_data_dict_batches_and_queued_experiments(tmp_path):
    project = own_repo(tmp_path, "tokens")
    trainline(project, "init", "--no-prepare", "--data-root", "data/text")
    assert "prepare:" not in (project.path / "dvc.yaml").read_text()
    project.run(str(BIN / "python"), "-c", "from tokens.data import write_text; write_text('data/text')")

    def point(params: dict) -> None:
        params["data"].update(classes=None, dataset={"type": "tokens.data.CharWindows", "block": 8},
                              collate_fn="tokens.data.collate", batch_size=16, val_batch_size=16)
        params["model"] = {"type": "tokens.model.TinyLM", "dim": 16}
        params["evaluator"] = {"type": "tokens.metric.NextToken"}
        params["eval"]["headline"] = ["token_acc", "perplexity"]
        params["optim"]["lr"] = 0.02
        params["param_scheduler"] = []
        params["train_cfg"].update(max_iters=30, val_interval=15)
        params["default_hooks"]["checkpoint"]["interval"] = 15

    edit_params(project, point)
    assert trainline(project, "check").returncode == 0
    project.commit("trainline set up, data ready")

    out = project.dvc("repro").stdout
    assert ran(out) == ["train", "eval"]
    result = json.loads((project.path / "metrics/eval.json").read_text())
    assert list(result) == ["token_acc", "perplexity", "split"]
    assert result["token_acc"] > 30 and result["perplexity"] < 20, result
    [run] = mlflow_runs(project)
    assert run.data.tags["trainline.headline"] == "token_acc,perplexity"
    assert "train/loss_next" in run.data.metrics and "val/token_acc" in run.data.metrics
    project.commit("results")

    # Queued experiments run in a throwaway copy of the repo: the user's package is found there too, and the run
    # lands in the project's own store.
    project.dvc("exp", "run", "--queue", "-S", "optim.lr=0.005", "-n", "lower-lr")
    project.dvc("exp", "run", "--run-all")
    runs = mlflow_runs(project)
    assert len(runs) == 2, [r.info.run_name for r in runs]
    assert runs[1].info.run_name == "lower-lr" and runs[1].data.params["optim.lr"] == "0.005"
    assert "test/token_acc" in runs[1].data.metrics
