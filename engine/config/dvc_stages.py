"""What `dvc repro` would refuse in the dvc.yaml beside a params file (listed params a file does not hold as written,
dependencies that neither exist nor are written by a stage) and what it would silently skip (a stage that reads a
key from a file the params file includes without listing that file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config.dvc_params import holds, listed_params, outside_project, plan
from engine.config.yaml_io import included_files, parse_yaml, read_as_written
from engine.errors import UserError


def dvc_yaml_problems(params: str | Path) -> list[str]:
    """Problems of `dvc.yaml` in the params file's directory that concern this params file (none if absent)."""
    params_path = Path(params).resolve()
    dvc_yaml = params_path.parent / "dvc.yaml"
    if not dvc_yaml.is_file():
        return []
    try:
        doc = parse_yaml(dvc_yaml.read_text(encoding="utf-8"), str(dvc_yaml))
    except UserError as exc:
        return [str(exc)]
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, dict):
        return [] if doc is None else [f"{dvc_yaml.name}: needs a `stages:` mapping"]
    problems: list[str] = []
    outs = _all_outs(stages, dvc_yaml.parent)
    raw: Any = None
    try:
        includes = {f.resolve(): read_as_written(f) for f in included_files(params_path)[1:]}
    except UserError:
        includes = {}  # the params file's own problems (a missing base, a cycle) are reported by its check
    for name, stage in stages.items():
        if not isinstance(stage, dict) or "foreach" in stage or "matrix" in stage:
            continue  # templated stages are DVC's to expand; their keys are only known after interpolation
        wdir = dvc_yaml.parent / str(stage.get("wdir", "."))
        for file, key in listed_params(stage.get("params") or []):
            included = includes.get((wdir / file).resolve())
            if included is not None and "${" not in key and not holds(included, key):
                problems.append(f"dvc.yaml: stages.{name}.params lists {key} in {file}, which that file does not "
                                f"hold as written, so `dvc repro` would fail; run `trainline dvc-params`")
            if (wdir / file).resolve() != params_path or "${" in key:
                continue
            if raw is None:
                # DVC reads the file as written: `_base_` files and the engine's defaults are invisible to it.
                raw = parse_yaml(params_path.read_text(encoding="utf-8"), str(params_path)) or {}
            if not holds(raw, key):
                problems.append(f"dvc.yaml: stages.{name}.params lists {key}, which {params_path.name} does not "
                                f"hold as written (DVC reads the file itself, not its _base_ or defaults), so "
                                f"`dvc repro` would fail; "
                                + ("run `trainline dvc-params` (it lists each key in the file that holds it)"
                                   if includes else f"write {key} in {params_path.name} or drop it from the stage"))
        for dep in stage.get("deps") or []:
            if not isinstance(dep, str) or "${" in dep or "://" in dep:
                continue
            path = (wdir / dep).resolve()
            if not path.exists() and not any(path == out or out in path.parents or path in out.parents
                                              for out in outs):
                problems.append(f"dvc.yaml: stages.{name}.deps: {dep} does not exist and no stage writes it, so "
                                f"`dvc repro` would fail; create it or drop it from the stage")
    return problems + unlisted_includes(params)


def unlisted_includes(params: str | Path, stage: str | None = None) -> list[str]:
    """One line per stage (or only `stage`) and included file it reads keys from without listing them."""
    try:
        plans = plan(params)
        lines = outside_project(params)
    except UserError:
        return []  # an unreadable dvc.yaml or params file is reported by the other checks
    for p in plans:
        if stage is not None and p.name != stage:
            continue
        by_file: dict[str, list[str]] = {}
        for file, key in p.missing:
            by_file.setdefault(file, []).append(key)
        lines += [f"dvc.yaml: stages.{p.name} reads {', '.join(keys)} from {file} without listing {file} in its "
                  f"params, so DVC would not rerun {p.name} when {file} changes; run `trainline dvc-params`"
                  for file, keys in by_file.items()]
    return lines


def _all_outs(stages: dict[str, Any], root: Path) -> list[Path]:
    """Every path a stage writes (outs, metrics, plots), resolved against its working directory."""
    found: list[Path] = []
    for stage in stages.values():
        if not isinstance(stage, dict):
            continue
        wdir = root / str(stage.get("wdir", "."))
        for section in ("outs", "metrics", "plots"):
            for out in stage.get(section) or []:
                names = [out] if isinstance(out, str) else list(out) if isinstance(out, dict) else []
                found += [(wdir / str(n)).resolve() for n in names]
    return found
