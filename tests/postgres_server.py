"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, started on a free loopback port, one database.

PostgreSQL refuses to run as root, so under root (CI) the cluster belongs to an unprivileged system user (`postgres`,
which Debian's package creates, else `nobody`) and its commands run through `runuser`; a developer's own account runs
them directly. The binaries come from `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin` (Debian keeps
initdb and pg_ctl off PATH), else PATH.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.mlflow_server import free_port


def bindir() -> Path | None:
    """Where initdb and pg_ctl are, or None when PostgreSQL's server is not installed."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: _version(Path(p).parent.name))
    candidates += [Path(p) for p in reversed(versions)]
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb") or "").resolve().parent)
    for path in candidates:
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _owner() -> str | None:
    """The user the cluster runs as: None for the current (non-root) user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root, and neither a `postgres` nor a `nobody` user exists to own the cluster")


class PostgresServer:
    """`start()` a cluster holding database `name`, reachable at `uri` (`postgresql://USER@127.0.0.1:PORT/NAME`,
    trust authentication on loopback only); `stop()` ends it and removes its files."""

    user = "trainline"

    def __init__(self, name: str = "mlflow") -> None:
        found = bindir()
        if found is None:
            raise RuntimeError("PostgreSQL's initdb/pg_ctl not found (Debian: apt-get install postgresql)")
        self.bin = found
        self.name = name
        self.port = free_port()
        self.uri = f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"
        self._owner = _owner()
        # Not under pytest's tmp_path: its parents are private to the current user, and the cluster's owner must
        # reach the data directory.
        self.root = Path(tempfile.mkdtemp(prefix="trainline-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        if self._owner is not None:
            entry = pwd.getpwnam(self._owner)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _as_owner(self, *args: str) -> list[str]:
        return ["runuser", "-u", self._owner, "--", *args] if self._owner else list(args)

    def _run(self, *args: str) -> None:
        result = subprocess.run(self._as_owner(*args), cwd=self.root, capture_output=True, text=True, timeout=120,
                                check=False)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}{log}")

    def start(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--no-instructions")
        # A test cluster: no durability needed, so no fsync; listen on loopback only, the socket in our own dir.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                  "-o", options)
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(self._as_owner(str(self.bin / "pg_ctl"), "stop", "-m", "immediate", "-w", "-D",
                                          str(self.data)), cwd=self.root, capture_output=True, timeout=60,
                           check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
