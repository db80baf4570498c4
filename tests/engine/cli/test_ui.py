"""`trainline ui` without MLflow's server: loopback by default, a warning for other hosts, the experiment's URL once
/health answers, one error line for a missing store or a busy port. (tests/e2e/test_browser.py runs the real one.)"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engine.cli import main, ui_server
from tests.mlflow_server import free_port

ROOT = Path(__file__).resolve().parents[3]

# Stands in for `mlflow server`: answers /health and the experiment lookup on the host and port it is given, then
# exits, which ends `trainline ui` as a server stopping would.
FAKE_SERVER = r"""
import http.server, json, sys
host, port = sys.argv[1], int(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body, code = b"OK", 200
        elif "experiment_name=trainline-shapes" in self.path:
            body, code = json.dumps({"experiment": {"experiment_id": "7"}}).encode(), 200
            self.server.done = True
        else:
            body, code = b'{"error_code": "RESOURCE_DOES_NOT_EXIST"}', 404
            self.server.done = True
        self.send_response(code)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer((host, port), Handler)
server.done = False
while not server.done:
    server.handle_request()
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root with the shipped params and an (empty) embedded store."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "mlflow.db").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return tmp_path


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The commands `trainline ui` would run; each starts the fake server instead."""
    commands: list[list[str]] = []

    def fake_launch(cmd: Sequence[str]) -> subprocess.Popen[bytes]:
        commands.append(list(cmd))
        host, port = cmd[cmd.index("--host") + 1], cmd[cmd.index("--port") + 1]
        return subprocess.Popen([sys.executable, "-c", FAKE_SERVER, host, port], start_new_session=True)

    monkeypatch.setattr(ui_server, "launch", fake_launch)
    return commands


def ui(*args: str) -> Result:
    return CliRunner().invoke(main, ["ui", *args])


def option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_serves_the_project_store_on_loopback_and_prints_the_experiment_url(project, launched):
    port = free_port()
    result = ui("--port", str(port))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"http://127.0.0.1:{port}/#/experiments/7\n"
    assert "warning" not in result.stderr
    (cmd,) = launched
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    assert option(cmd, "--host") == "127.0.0.1"
    assert option(cmd, "--port") == str(port)
    assert option(cmd, "--backend-store-uri") == f"sqlite:///{project / 'mlflow.db'}"
    # where engine.tracking puts the artifacts of the experiments it creates in the embedded store
    assert option(cmd, "--artifacts-destination") == str(project / "mlartifacts")


def test_binding_all_interfaces_needs_the_flag_and_warns(project, launched):
    port = free_port()
    result = ui("--port", str(port), "--host", "0.0.0.0")
    assert result.exit_code == 0, result.output
    assert option(launched[0], "--host") == "0.0.0.0"
    assert result.stderr.startswith("warning: --host 0.0.0.0 serves the MLflow UI")
    assert result.stdout == f"http://127.0.0.1:{port}/#/experiments/7\n"  # what a browser on this machine opens


def test_an_experiment_not_created_yet_shows_all_experiments(project, launched):
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("experiment_name: trainline-shapes", "experiment_name: other"))
    port = free_port()
    result = ui("--port", str(port))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"http://127.0.0.1:{port}/\n"
    assert "no experiment 'other'" in result.stderr


def test_a_missing_store_is_one_error_line(project, launched):
    (project / "mlflow.db").unlink()
    result = ui("--port", str(free_port()))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: no MLflow store at {project / 'mlflow.db'}")
    assert "dvc repro" in result.stderr
    assert launched == []


def test_a_busy_port_is_one_error_line(project, launched):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = ui("--port", str(port))
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: --port {port}: 127.0.0.1:{port} is not free")
    assert launched == []


@pytest.mark.parametrize(("host", "loopback", "browser_host"), [
    ("127.0.0.1", True, "127.0.0.1"), ("localhost", True, "127.0.0.1"), ("::1", True, "127.0.0.1"),
    ("127.0.0.2", True, "127.0.0.1"), ("0.0.0.0", False, "127.0.0.1"), ("192.168.1.5", False, "192.168.1.5"),
    ("fe80::1", False, "[fe80::1]"),
])
def test_which_hosts_count_as_loopback(host, loopback, browser_host):
    assert ui_server.is_loopback(host) is loopback
    assert (ui_server.host_warning(host) is None) is loopback
    assert ui_server.client_host(host) == browser_host


def wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def test_an_http_store_is_already_a_ui(project, launched, monkeypatch):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", FAKE_SERVER, "127.0.0.1", str(port)])
    try:
        wait_listening(port)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
        result = ui()
    finally:
        server.kill()
        server.wait()
    assert result.exit_code == 0, result.output
    assert result.stdout == f"http://127.0.0.1:{port}/#/experiments/7\n"
    assert launched == []  # nothing started: that server has its own UI
