"""`trainline ui`: the MLflow UI on the project's store, bound to loopback unless asked otherwise, stopped cleanly."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

import click

from engine.errors import UserError
from engine.tracking import check_store, sqlite_path

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 180.0  # importing MLflow's server takes ~10 s on two busy cores; a cold disk more
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class UiSettings:
    uri: str  # the tracking URI runs are logged to (engine.tracking.tracking_uri)
    experiment_name: str
    host: str = LOOPBACK
    port: int = 5000


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_warning(host: str) -> str | None:
    """Why binding beyond loopback deserves a second thought: the REST API behind the UI can write and delete."""
    if is_loopback(host):
        return None
    return (f"warning: --host {host} serves the MLflow UI and its REST API (which can change and delete runs) to "
            f"the network, without authentication; MLflow still answers only Host headers in --allowed-hosts "
            f"(localhost and private addresses by default)")


def check_port_free(host: str, port: int) -> None:
    """Fail before the server does: its own message for a busy port is a traceback among start-up logs."""
    bind_host = "" if host in ("0.0.0.0", "::") else host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((bind_host, port))
        except OSError as exc:
            raise UserError(f"--port {port}: {host}:{port} is not free ({exc.strerror}); choose another port, "
                            f"e.g. `trainline ui --port {port + 1}`") from None


def server_command(settings: UiSettings) -> list[str]:
    """`mlflow server` on the store. For the embedded sqlite store, artifacts live in <store dir>/mlartifacts (where
    engine.tracking points the experiments it creates), and experiments created in the UI get the same place."""
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", settings.uri,
           "--host", settings.host, "--port", str(settings.port),
           "--workers", "1",  # one user, one browser: MLflow's default of 4 workers only costs start-up time
           "--uvicorn-opts=--no-access-log"]  # a line per request would bury the URL
    path = sqlite_path(settings.uri)
    if path is not None:
        cmd += ["--artifacts-destination", str(path.parent / "mlartifacts")]
    return cmd


def client_host(host: str) -> str:
    """Where a browser on this machine reaches a server bound to `host` (a wildcard is reached on loopback)."""
    if host in ("0.0.0.0", "::", "") or is_loopback(host):
        return LOOPBACK
    return f"[{host}]" if ":" in host else host


def experiment_url(base: str, experiment_id: str | None) -> str:
    return f"{base}/#/experiments/{experiment_id}" if experiment_id else f"{base}/"


def _get_json(url: str, timeout: float = 10.0) -> dict | None:
    """The JSON body of a GET, or None for a 404 (MLflow's RESOURCE_DOES_NOT_EXIST)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own server's URL
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def find_experiment_id(base: str, name: str) -> str | None:
    query = urllib.parse.urlencode({"experiment_name": name})
    found = _get_json(f"{base}/api/2.0/mlflow/experiments/get-by-name?{query}")
    return None if found is None else str(found["experiment"]["experiment_id"])


def _answers_health(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


def launch(cmd: Sequence[str]) -> subprocess.Popen[bytes]:
    """The server in its own session (a signal we forward reaches MLflow's CLI and the uvicorn it starts alike), its
    logs on our stderr so that stdout carries only the URL."""
    env = dict(os.environ)
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow's job runner (GenAI judges, trace roll-ups) is seven huey processes: nothing a training UI uses.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return subprocess.Popen(list(cmd), env=env, stdout=2, start_new_session=True)


def _signal_group(pgid: int, signum: int) -> bool:
    """Signal the server's whole process group; False once nothing is left in it."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn's graceful shutdown) to the group, SIGKILL to whatever is left after STOP_TIMEOUT_S: a
    worker outliving MLflow's CLI process would keep the port."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        proc.poll()  # reap our child, or the group never empties
        if not _signal_group(proc.pid, 0):
            return
        time.sleep(0.1)
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait()


def _note_missing(settings: UiSettings) -> None:
    click.echo(f"note: no experiment {settings.experiment_name!r} in {settings.uri} yet (run `dvc repro`); "
               f"showing all experiments", err=True)


def _show_remote(settings: UiSettings, echo: Callable[[str], None]) -> int:
    """The store is an MLflow server already: its own UI is the one to open; starting another would not help."""
    from engine.tracking import check_reachable

    base = settings.uri.rstrip("/")
    check_reachable(base)
    experiment = find_experiment_id(base, settings.experiment_name)
    if experiment is None:
        _note_missing(settings)
    click.echo(f"the tracking store is the MLflow server {base}; its UI:", err=True)
    echo(experiment_url(base, experiment))
    return 0


def serve(settings: UiSettings, echo: Callable[[str], None] = click.echo,
          launcher: Callable[[Sequence[str]], subprocess.Popen[bytes]] | None = None) -> int:
    """Start the UI, print the experiment's URL once /health answers, and run until the server stops or we get
    SIGINT/SIGTERM (forwarded to the server; then 0). A server that dies on its own is a UserError."""
    if settings.uri.startswith(("http://", "https://")):
        return _show_remote(settings, echo)
    warning = host_warning(settings.host)
    if warning:
        click.echo(warning, err=True)
    check_store(settings.uri)
    check_port_free(settings.host, settings.port)
    base = f"http://{client_host(settings.host)}:{settings.port}"
    received: list[int] = []

    proc: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        # Forwarded as SIGTERM: uvicorn stops gracefully on either, but SIGINT makes MLflow's CLI process print a
        # KeyboardInterrupt traceback.
        received.append(signum)
        if proc is not None:
            _signal_group(proc.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        proc = (launcher or launch)(server_command(settings))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not received and not _answers_health(base):
            if proc.poll() is not None:
                raise UserError(f"the MLflow server exited with code {proc.returncode} before answering on {base} "
                                f"(its output is above)")
            if time.monotonic() > deadline:
                raise UserError(f"the MLflow server did not answer {base}/health within {START_TIMEOUT_S:.0f} s")
            time.sleep(0.3)
        if not received:
            experiment = find_experiment_id(base, settings.experiment_name)
            if experiment is None:
                _note_missing(settings)
            echo(experiment_url(base, experiment))
            code = proc.wait()  # a forwarded signal ends it
            if not received and code != 0:
                raise UserError(f"the MLflow server stopped with exit code {code}")
        if received:
            click.echo("stopped the MLflow UI", err=True)
        return 0
    finally:
        if proc is not None:
            _stop(proc)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
