"""MLflow plumbing shared by the logger hook and the eval stage: which store, which experiment, which tags."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from engine.config import flatten
from engine.errors import UserError
from engine.git import git_output
from engine.sweep import sweep_tag

T = TypeVar("T")
logger = logging.getLogger("trainline")


def project_root() -> Path:
    """The project root, also from a DVC temp/queue executor: `$DVC_ROOT` if DVC set it, else the nearest parent
    holding `.dvc` or `dvc.yaml`, else the working directory."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".dvc").is_dir() or (candidate / "dvc.yaml").is_file():
            return candidate
    return here


def tracking_uri(cfg: dict[str, Any]) -> str:
    """`MLFLOW_TRACKING_URI`, else `mlflow.tracking_uri`, else `sqlite:///<project root>/mlflow.db` (absolute, so
    a run started in a temporary DVC executor lands in the project's store, not in a copy deleted afterwards)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or cfg["mlflow"]["tracking_uri"]
    root = project_root()
    if not uri:
        return f"sqlite:///{root / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = Path(uri[len("sqlite:///"):])
        return f"sqlite:///{path if path.is_absolute() else root / path}"
    return uri


def check_reachable(uri: str) -> None:
    """Fail fast (exit 2, before any training) when an http tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as response:  # noqa: S310
            if response.status == 200:
                return
    except OSError as exc:
        raise UserError(f"mlflow.tracking_uri: cannot reach the MLflow server at {uri} ({exc}); start it or fix "
                        f"the URI (MLFLOW_TRACKING_URI or params.yaml mlflow.tracking_uri)") from None
    raise UserError(f"mlflow.tracking_uri: {uri}/health did not answer 200")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (query string dropped), or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock beside a sqlite store (`<db>.lock`) while the store is opened and the experiment looked
    up: queued DVC workers starting together on a fresh `mlflow.db` would otherwise run MLflow's schema migrations
    at the same time, which fails ("duplicate column", "table _alembic_tmp_metrics already exists") and can leave
    the database half-migrated for good. No-op for other stores, and where the lock file cannot be made (a read-only
    directory: only reading happens there).

    The file is removed on release so it never shows up in `git status`; a waiter that then gets the lock on the
    removed file sees that the path no longer names it and locks afresh."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    import fcntl

    lock = path.with_name(path.name + ".lock")
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            held = os.fstat(fd)
            current = os.stat(lock)
            if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def _transient(exc: BaseException) -> bool:
    """A failure another process causes for a moment: a write lock held, or the same row created just now."""
    message = str(exc)
    return ("database is locked" in message or "UNIQUE constraint failed" in message
            or getattr(exc, "error_code", None) == "RESOURCE_ALREADY_EXISTS")


def with_retries(action: Callable[[], T], what: str, attempts: int = 6, base_delay: float = 0.2,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """`action()`, repeated with exponential back-off and jitter (0.2 s, 0.4 s, ... up to 3 s a wait) while it fails
    transiently (see `_transient`); any other failure, or the last one, propagates."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as exc:
            if attempt == attempts - 1 or not _transient(exc):
                raise
            delay = min(base_delay * 2 ** attempt, 3.0) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter only
            logger.debug("%s: %s; retrying in %.2f s", what, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def check_store(uri: str) -> None:
    """For commands that only read runs: a local store that does not exist yet is a one-line error, not a new empty
    store (MLflow would create one on first contact)."""
    path = sqlite_path(uri)
    if path is not None and not path.is_file():
        raise UserError(f"no MLflow store at {path}: nothing has been tracked yet; run `dvc repro` first, or point "
                        f"MLFLOW_TRACKING_URI / params.yaml mlflow.tracking_uri at your store")
    if uri.startswith("file:"):
        local = Path(urllib.parse.urlparse(uri).path)
        if not local.is_dir():
            raise UserError(f"no MLflow store at {local}: nothing has been tracked yet; run `dvc repro` first")
    check_reachable(uri)


def client(uri: str) -> Any:
    """An MlflowClient on `uri`. Its first use of a fresh sqlite store creates the schema: done under `store_lock`."""
    from mlflow.tracking import MlflowClient

    with store_lock(uri):
        return with_retries(lambda: MlflowClient(tracking_uri=uri), f"opening the MLflow store {uri}")


def experiment_id(mlflow_client: Any, name: str, uri: str) -> str:
    """The experiment's id, creating it (artifacts beside an embedded store) if needed. Safe when several processes
    start at once: under `store_lock` for sqlite, and for any store a lost creation race is retried as a lookup."""
    location = None
    path = sqlite_path(uri)
    if path is not None:
        location = (path.parent / "mlartifacts").as_uri()

    def get_or_create() -> str:
        found = mlflow_client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return str(mlflow_client.create_experiment(name, artifact_location=location))

    with store_lock(uri):
        return with_retries(get_or_create, f"looking up MLflow experiment {name!r}")


def param_value(value: Any) -> str:
    """One canonical string per value (`6e-05`, `true`, `null`, `[]`), so re-logging a resumed run never differs."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def flat_params(cfg: dict[str, Any]) -> dict[str, str]:
    """The resolved config as MLflow params: dotted keys, lists indexed, canonical strings."""
    return {key: param_value(value)[:6000] for key, value in flatten(cfg).items()}


def run_tags(root: Path, extra: dict[str, str]) -> dict[str, str]:
    """Tags tracing a run back to its code, experiment and environment."""
    import accelerate
    import mlflow
    import torch

    import engine

    tags = {
        "trainline.version": engine.__version__,
        "torch.version": torch.__version__,
        "accelerate.version": accelerate.__version__,
        "mlflow.version": mlflow.__version__,
        **extra,
    }
    commit = (git_output(root, "rev-parse", "HEAD") or "").strip()
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git.commit"] = commit
        changed = (git_output(root, "status", "--porcelain", "--untracked-files=no") or "").strip()
        tags["git.dirty"] = "true" if changed else "false"
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    sweep = sweep_tag()
    if sweep:
        tags["trainline.sweep"] = sweep
    return tags


def data_hash(root: Path) -> str:
    """Short content hash of a prepared dataset directory (file names and bytes), for the run's `data_hash` tag."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]
