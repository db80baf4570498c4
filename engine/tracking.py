"""MLflow plumbing shared by the logger hook and the eval stage: which store, which experiment, which tags."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from engine.config import flatten
from engine.errors import UserError


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


def client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def experiment_id(mlflow_client: Any, name: str, uri: str) -> str:
    """The experiment's id, creating it (artifacts beside an embedded store) if needed."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except Exception:  # another process created it between the lookup and here
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def param_value(value: Any) -> str:
    """One canonical string per value (`6e-05`, `true`, `null`, `[]`), so re-logging a resumed run never differs."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def flat_params(cfg: dict[str, Any]) -> dict[str, str]:
    """The resolved config as MLflow params: dotted keys, lists indexed, canonical strings."""
    return {key: param_value(value)[:6000] for key, value in flatten(cfg).items()}


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


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
    commit = _git(root, "rev-parse", "HEAD")
    if commit:
        tags["mlflow.source.git.commit"] = commit
        tags["git.commit"] = commit
        tags["git.dirty"] = "true" if _git(root, "status", "--porcelain", "--untracked-files=no") else "false"
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
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
