"""A real `mlflow server` on 127.0.0.1 (a free port; a temp sqlite backend or any other backend store URI) that serves
the artifacts itself, and that tests can stop and start again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """`start()` / `kill()` / `start()` again on the same port and backend: a server outage and its return.

    The backend is `<root>/server.db` unless `backend_store_uri` names another (`postgresql://...`); artifacts are
    served by the server (`mlflow-artifacts:/` URIs) from `<root>/artifacts`."""

    def __init__(self, root: Path, backend_store_uri: str | None = None) -> None:
        self.root = root
        self.backend_store_uri = backend_store_uri or f"sqlite:///{root / 'server.db'}"
        self.artifacts = root / "artifacts"
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        mlflow = Path(sys.executable).with_name("mlflow")
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the server process owns it
        self._proc = subprocess.Popen(
            [str(mlflow), "server", "--backend-store-uri", self.backend_store_uri, "--serve-artifacts",
             "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            cwd=self.root, stdout=log, stderr=log, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
            if self._proc.poll() is not None:
                break
        raise RuntimeError(f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}")

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=30)
        self._proc = None
