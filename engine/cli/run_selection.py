"""Which MLflow runs `trainline compare` and `trainline report` mean: named ones, or the current experiment set as
`dvc exp show` lists it (the commit's baseline, its DVC experiments, the workspace), found through the run tags."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.git import git_output
from engine.pipeline import RUN_INFO

PARAMS_HASH_TAG = "params_hash"


@dataclass
class Selection:
    """The runs in display order (the first is what deltas are taken against) and notes saying how some were found."""

    runs: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, run: Any) -> bool:
        if any(r.info.run_id == run.info.run_id for r in self.runs):
            return False
        self.runs.append(run)
        return True


def _head(root: Path) -> str | None:
    """The commit checked out at `root`, or None outside a git repository."""
    return (git_output(root, "rev-parse", "HEAD") or "").strip() or None


def _run_id_in(text: str | None) -> str | None:
    try:
        return str(json.loads(text or "")["mlflow_run_id"]) or None
    except (ValueError, KeyError, TypeError):
        return None


def _get(client: Any, run_id: str | None) -> Any:
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception:  # noqa: BLE001 - a run of another store (or deleted): not part of this comparison
        return None


def _search(client: Any, experiment_id: str, filter_string: str = "", max_results: int = 1000) -> list[Any]:
    return list(client.search_runs([experiment_id], filter_string=filter_string, max_results=max_results,
                                   order_by=["attributes.start_time DESC"]))


def runs_with_params_hash(client: Any, experiment_id: str, params_hash: str) -> list[Any]:
    """Runs tagged with this params hash, finished ones first, newest first within each."""
    found = _search(client, experiment_id, f"tags.{PARAMS_HASH_TAG} = '{params_hash}'")
    return sorted(found, key=lambda r: r.info.status != "FINISHED")


def describe(run: Any) -> str:
    """`NAME (id 1a2b3c4d, started 2026-12-04 18:20, commit 0123abcd)`."""
    started = datetime.datetime.fromtimestamp(run.info.start_time / 1000).strftime("%Y-%m-%d %H:%M")
    commit = run.data.tags.get("git.commit", "")[:8]
    name = run.info.run_name or run.info.run_id[:8]
    return f"{name} (id {run.info.run_id[:8]}, started {started}" + (f", commit {commit})" if commit else ")")


def workspace_run(client: Any, experiment_id: str, root: Path, params_hash: str) -> tuple[Any, str | None]:
    """The run that trained the workspace's params, found by its `params_hash` tag (the one models/train_run.json
    names when there are several), and a note when no training ran for it at the current commit: DVC restored the
    train stage from its run-cache (or kept it unchanged) from an earlier run."""
    candidates = runs_with_params_hash(client, experiment_id, params_hash)
    if not candidates:
        return None, None
    named = _run_id_in((root / RUN_INFO).read_text(encoding="utf-8")) if (root / RUN_INFO).is_file() else None
    run = next((r for r in candidates if r.info.run_id == named), candidates[0])
    head = _head(root)
    tags = run.data.tags
    if head is None or head in (tags.get("git.commit"), tags.get("dvc.baseline_rev")):
        return run, None
    return run, (f"the workspace's params (params_hash {params_hash}) were trained by the earlier run "
                 f"{describe(run)}, found by its params_hash tag: DVC restored the train stage from its "
                 f"run-cache (or it was unchanged since), so no new run was made")


def _committed_run_info(root: Path) -> str | None:
    """models/train_run.json as the current commit's dvc.lock has it (a DVC output: read through DVC's cache)."""
    try:
        import dvc.api

        return str(dvc.api.read(RUN_INFO.as_posix(), repo=str(root), rev="HEAD"))
    except Exception:  # noqa: BLE001 - not a DVC repo, outputs never committed or not in the local cache
        return None


def experiment_set(client: Any, experiment_id: str, root: Path, params_hash: str | None, limit: int) -> Selection:
    """The current commit's baseline run, the DVC experiments queued or run on it, then the workspace's run; with
    none of those, the experiment's newest `limit` runs."""
    selection = Selection()
    head = _head(root)
    if head:
        baseline = _get(client, _run_id_in(_committed_run_info(root)))
        if baseline is None:  # outputs not committed: the commit's own runs that are no DVC experiment
            baseline = next((r for r in _search(client, experiment_id, f"tags.`git.commit` = '{head}'")
                             if "dvc.exp_name" not in r.data.tags), None)
        if baseline is not None:
            selection.add(baseline)
        experiments = _search(client, experiment_id, f"tags.`dvc.baseline_rev` = '{head}'", max_results=limit)
        for run in reversed(experiments):  # oldest first: deltas read as "what changed since"
            selection.add(run)
    if params_hash:
        run, note = workspace_run(client, experiment_id, root, params_hash)
        if run is not None and selection.add(run) and note:
            selection.notes.append(note)
    if not selection.runs:
        selection.runs = list(reversed(_search(client, experiment_id, max_results=max(limit, 1))))
        if selection.runs:
            where = f"commit {head[:8]}" if head else "this project"
            selection.notes.append(f"no runs of {where} or of the workspace's params yet: showing the newest "
                                   f"{len(selection.runs)} runs of the experiment")
    return selection


def named_runs(client: Any, experiment_id: str, experiment_name: str, selectors: list[str]) -> Selection:
    """Runs by id, run name (a DVC experiment name) or params hash, in the order given."""
    selection = Selection()
    runs = _search(client, experiment_id)
    for selector in selectors:
        match = [r for r in runs if selector in (r.info.run_id, r.info.run_name)]
        if not match:
            match = runs_with_params_hash(client, experiment_id, selector)
            if match:
                selection.notes.append(f"{selector}: the run with this params_hash is {describe(match[0])}")
        if not match:
            raise UserError(f"{selector}: no run with this id, name or params_hash in experiment "
                            f"{experiment_name!r}")
        selection.add(match[0])
    return selection


def experiment_id_of(client: Any, experiment_name: str) -> str:
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise UserError(f"mlflow.experiment_name: no experiment {experiment_name!r} in the store; run `dvc repro` "
                        f"first or pass --params with the right mlflow section")
    return str(experiment.experiment_id)
