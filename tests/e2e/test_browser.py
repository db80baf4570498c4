"""`trainline ui` in a real browser: two DVC experiments, the MLflow UI on a free port, headless Chromium reading the
run comparison and one run's metric chart as rendered. Screenshots go to $TRAINLINE_TEST_ARTIFACTS (test-artifacts/)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.chromium import Chromium, find_chromium
from tests.e2e.conftest import BIN, ROOT, Project, make_project
from tests.mlflow_server import free_port

pytestmark = pytest.mark.slow

ARTIFACTS = Path(os.environ.get("TRAINLINE_TEST_ARTIFACTS") or ROOT / "test-artifacts")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = find_chromium()
    if found is None:
        message = ("no Chromium: install Debian's `chromium` (.ci/run does when it is missing) or set CHROMIUM to "
                   "a Chromium/Chrome binary")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return found


class UiProcess:
    """`trainline ui` as a user runs it: its stdout read line by line in the background."""

    def __init__(self, project: Project, port: int) -> None:
        self.proc = subprocess.Popen([str(BIN / "trainline"), "ui", "--port", str(port)], cwd=project.path,
                                     env=project.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stdout], daemon=True).start()

    def url(self, timeout: float = 180.0) -> str:
        try:
            return self.lines.get(timeout=timeout).strip()
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(f"trainline ui printed no URL within {timeout:.0f} s:\n"
                                 f"{self.proc.stderr.read()}") from None

    def interrupt(self, timeout: float = 60.0) -> tuple[int, str]:
        """Ctrl-C, as a terminal sends it; the exit code and what went to stderr."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return code, self.proc.stderr.read()


def compare_url(base: str, run_ids: list[str], experiment_id: str) -> str:
    """The route MLflow's own "Compare" button opens (Routes.getCompareRunPageRoute in mlflow/server/js)."""
    return f"{base}/#/compare-runs?runs={json.dumps(run_ids)}&experiments={json.dumps([experiment_id])}"


def metric_url(base: str, run_id: str, metric: str, experiment_id: str) -> str:
    """The metric chart page of one run (Routes.getMetricPageRoute; the UI fills in the other plot settings)."""
    key = urllib.parse.quote(json.dumps(metric), safe="")
    return (f"{base}/#/metric?runs={json.dumps([run_id])}&metric={key}&experiments={json.dumps([experiment_id])}"
            f"&plot_metric_keys={urllib.parse.quote(json.dumps([metric]), safe='')}&x_axis=step")


def param_row(text: str, key: str) -> list[str]:
    """The values of one row of the comparison's parameter table (cells are tab-separated in innerText)."""
    rows = [line.split("\t") for line in text.splitlines() if line.startswith(f"{key}\t")]
    assert rows, f"no {key!r} row in the rendered comparison"
    return [cell.strip() for cell in rows[0][1:]]


def assert_port_closed(port: int) -> None:
    """Nothing listens any more: the server went with `trainline ui`."""
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"


def test_compare_and_metric_pages_render_both_experiments(tmp_path, chromium):
    started = time.monotonic()
    project = make_project(tmp_path)
    project.dvc("exp", "run")  # the default params first: `dvc exp run` leaves its params in the workspace
    project.dvc("exp", "run", "-S", "optim.lr=6e-5")
    client = MlflowClient(project.store)
    experiment = client.get_experiment_by_name(project.params()["mlflow"]["experiment_name"])
    runs = {r.data.params["optim.lr"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"0.003", "6e-05"}
    trained = time.monotonic()

    port = free_port()
    ui = UiProcess(project, port)
    shots = ARTIFACTS / "browser"
    try:
        base = f"http://127.0.0.1:{port}"
        assert ui.url() == f"{base}/#/experiments/{experiment.experiment_id}"
        served = time.monotonic()
        with Chromium(chromium, tmp_path / "chromium") as browser:
            ids = [runs["0.003"].info.run_id, runs["6e-05"].info.run_id]
            names = [runs["0.003"].info.run_name, runs["6e-05"].info.run_name]
            browser.open(compare_url(base, ids, experiment.experiment_id))
            try:
                text = browser.wait_for_text(["Comparing 2 Runs", *ids, *names, "optim.lr"])
                browser.wait_for("!!document.querySelector('.js-plotly-plot')")  # the parallel-coordinates plot
            finally:
                print(f"screenshot: {browser.screenshot(shots / 'compare-runs.png')}")
            assert param_row(text, "optim.lr") == ["0.003", "6e-05"]  # the columns follow the runs= order
            # the parameter table's optim.lr row (the last leaf with that text; the plot's pickers come first)
            browser.evaluate("[...document.querySelectorAll('body *')].filter(e => !e.children.length && "
                             "e.textContent.trim() === 'optim.lr').pop()?.scrollIntoView({block: 'center'})")
            print(f"screenshot: {browser.screenshot(shots / 'compare-runs-params.png')}")

            run = runs["6e-05"]
            loss = client.get_metric_history(run.info.run_id, "train/loss")
            last = max(loss, key=lambda m: m.step)
            browser.open(metric_url(base, run.info.run_id, "train/loss", experiment.experiment_id))
            try:
                # the legend names the run and the metric; the summary table holds the latest value at its step
                browser.wait_for_text([f"{run.info.run_name} (train/loss)", f"{last.value} (step={last.step})",
                                       "Step"])
                drawn = browser.wait_for("[...document.querySelectorAll('.js-plotly-plot .scatterlayer path.js-line')]"
                                         ".filter(p => (p.getAttribute('d') || '').length > 10).length")
            finally:
                print(f"screenshot: {browser.screenshot(shots / 'metric-train-loss.png')}")
            assert drawn >= 1  # a plotted line, not just the empty axes

            # artifacts of the embedded store (file:// under <root>/mlartifacts) are served too
            browser.open(f"{base}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}/artifacts")
            try:
                browser.wait_for_text(["Artifacts", "checkpoints", "config"])
            finally:
                print(f"screenshot: {browser.screenshot(shots / 'run-artifacts.png')}")
            browsed = time.monotonic()
    finally:
        code, stderr = ui.interrupt()
    assert code == 0, stderr
    assert "stopped the MLflow UI" in stderr
    assert_port_closed(port)
    print(f"times: training {trained - started:.0f} s, server {served - trained:.0f} s, "
          f"browser {browsed - served:.0f} s")
