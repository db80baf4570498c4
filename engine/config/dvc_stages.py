"""What `dvc repro` would refuse in the dvc.yaml beside a params file: listed params the file does not hold as
written, and dependencies that neither exist nor are written by a stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.config.yaml_io import parse_yaml
from engine.errors import UserError

DEFAULT_PARAMS_FILE = "params.yaml"  # DVC's default for a bare key under a stage's `params:`


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
    for name, stage in stages.items():
        if not isinstance(stage, dict) or "foreach" in stage or "matrix" in stage:
            continue  # templated stages are DVC's to expand; their keys are only known after interpolation
        wdir = dvc_yaml.parent / str(stage.get("wdir", "."))
        for file, key in _listed_params(stage.get("params") or []):
            if (wdir / file).resolve() != params_path or "${" in key:
                continue
            if raw is None:
                # DVC reads the file as written: `_base_` files and the engine's defaults are invisible to it.
                raw = parse_yaml(params_path.read_text(encoding="utf-8"), str(params_path)) or {}
            if not _holds(raw, key):
                problems.append(f"dvc.yaml: stages.{name}.params lists {key}, which {params_path.name} does not "
                                f"hold as written (DVC reads the file itself, not its _base_ or defaults), so "
                                f"`dvc repro` would fail; write {key} in {params_path.name} or drop it from the "
                                f"stage")
        for dep in stage.get("deps") or []:
            if not isinstance(dep, str) or "${" in dep or "://" in dep:
                continue
            path = (wdir / dep).resolve()
            if not path.exists() and not any(path == out or out in path.parents or path in out.parents
                                              for out in outs):
                problems.append(f"dvc.yaml: stages.{name}.deps: {dep} does not exist and no stage writes it, so "
                                f"`dvc repro` would fail; create it or drop it from the stage")
    return problems


def _listed_params(entries: list[Any]) -> list[tuple[str, str]]:
    """(file, dotted key) for each listed param; a whole-file entry (`- file.yaml:` with no keys) lists none."""
    pairs: list[tuple[str, str]] = []
    for entry in entries:
        if isinstance(entry, str):
            pairs.append((DEFAULT_PARAMS_FILE, entry))
        elif isinstance(entry, dict):
            for file, keys in entry.items():
                pairs += [(str(file), str(key)) for key in keys or []]
    return pairs


def _holds(node: Any, key: str) -> bool:
    """Whether the dotted `key` names a value in `node` (list items by index, as DVC's lookup allows)."""
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


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
