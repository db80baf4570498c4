"""Which params files each dvc.yaml stage must list: a params file with `_base_` is read from several files, and DVC
reruns a stage only for the files and keys its `params:` names (`trainline dvc-params` writes them; check compares)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config.yaml_io import included_files, parse_yaml, read_as_written
from engine.errors import UserError

DEFAULT_PARAMS_FILE = "params.yaml"  # DVC's default for a bare key under a stage's `params:`
Entry = tuple[str, str]  # (params file as dvc.yaml names it, relative to the stage's wdir; dotted key)


@dataclass
class StagePlan:
    """One stage's params listing as it is and as the params file's includes require."""

    name: str
    listed: list[Entry]                 # every (file, key) the stage lists now, in order
    wanted: list[Entry]                 # what it must list for the params file and its includes
    kept: list[Entry]                   # listed entries of files that are not trainline params files (left alone)
    reads: list[str]                    # the keys the stage reads (union over its params files' listings)
    unheld: list[str] = field(default_factory=list)  # keys it reads that no file of the closure holds

    @property
    def missing(self) -> list[Entry]:
        """What the stage reads from a file of the closure without listing it: DVC would not rerun it."""
        return [e for e in self.wanted if e not in self.listed]


def listed_params(entries: list[Any]) -> list[Entry]:
    """(file, dotted key) for each listed param; a whole-file entry (`- file.yaml:` with no keys) lists none."""
    pairs: list[Entry] = []
    for entry in entries:
        if isinstance(entry, str):
            pairs.append((DEFAULT_PARAMS_FILE, entry))
        elif isinstance(entry, dict):
            for file, keys in entry.items():
                pairs += [(str(file), str(key)) for key in keys or []]
    return pairs


def holds(node: Any, key: str) -> bool:
    """Whether the dotted `key` names a value in `node` (list items by index, as DVC's lookup allows)."""
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def read_dvc_yaml(params: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """(dvc.yaml beside the params file, its `stages` mapping), or None when there is none to judge."""
    dvc_yaml = Path(params).resolve().parent / "dvc.yaml"
    if not dvc_yaml.is_file():
        return None
    doc = parse_yaml(dvc_yaml.read_text(encoding="utf-8"), str(dvc_yaml))
    stages = doc.get("stages") if isinstance(doc, dict) else None
    return (dvc_yaml, stages) if isinstance(stages, dict) else None


def plan(params: str | Path) -> list[StagePlan]:
    """Each stage that reads the params file (or one of its includes) with what it lists and what it must list."""
    found = read_dvc_yaml(params)
    if found is None:
        return []
    dvc_yaml, stages = found
    closure = [(f.resolve(), read_as_written(f)) for f in included_files(params)]
    closure = [(path, {k: v for k, v in raw.items() if k != "_base_"}) for path, raw in closure]
    closure = [(path, raw) for path, raw in closure if path.is_relative_to(dvc_yaml.parent)]  # see outside_project
    in_closure = {path for path, _ in closure}
    plans = []
    for name, stage in stages.items():
        if not isinstance(stage, dict) or "foreach" in stage or "matrix" in stage:
            continue  # templated stages are DVC's to expand; their keys are only known after interpolation
        wdir = (dvc_yaml.parent / str(stage.get("wdir", "."))).resolve()
        listed = listed_params(stage.get("params") or [])
        ours = [(f, k) for f, k in listed if "${" not in f + k and _is_ours(wdir / f, in_closure)]
        is_default = Path(params).resolve() == wdir / DEFAULT_PARAMS_FILE
        if not ours or not (is_default or any((wdir / f).resolve() in in_closure for f, _ in ours)):
            continue  # the stage reads other params files than this one (DVC reads params.yaml unless told)
        reads = list(dict.fromkeys(k for _, k in ours))
        wanted: list[Entry] = []
        unheld = []
        for key in reads:
            holders = [(_dvc_name(path, wdir, dvc_yaml.parent), key) for path, raw in closure if holds(raw, key)]
            wanted += holders
            unheld += [] if holders else [key]
        wanted.sort(key=lambda e: [_dvc_name(p, wdir, dvc_yaml.parent) for p, _ in closure].index(e[0]))
        kept = [e for e in listed if e not in ours]
        plans.append(StagePlan(name, listed, wanted, kept, reads, unheld))
    return plans


def _is_ours(path: Path, closure: set[Path]) -> bool:
    """A file of the params closure, or a trainline params file no longer included (a preset switched away from:
    its entries are replaced); any other file a stage lists is the user's own and left alone."""
    from engine.config.schema import SECTIONS

    path = path.resolve()
    if path in closure:
        return True
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return False
    try:
        raw = read_as_written(path)
    except UserError:
        return False
    return bool(raw) and all(k in SECTIONS or k == "_base_" for k in raw)


def _dvc_name(path: Path, wdir: Path, root: Path) -> str:
    """How a stage names a params file: relative to its wdir (DVC's default file as a bare key)."""
    if path.parent == wdir and path.name == DEFAULT_PARAMS_FILE:
        return DEFAULT_PARAMS_FILE
    return Path(os.path.relpath(path, wdir)).as_posix()


def outside_project(params: str | Path) -> list[str]:
    """One line per file the params file includes from outside the project of the dvc.yaml beside it: DVC cannot
    track those, so no stage would rerun when they change."""
    found = read_dvc_yaml(params)
    if found is None:
        return []
    root = found[0].parent
    return [f"{params}: includes {path} (through `_base_`) from outside the project {root}; DVC tracks only files "
            f"inside it, so no stage would rerun when it changes: copy it into the project and include the copy"
            for path in (f.resolve() for f in included_files(params)) if not path.is_relative_to(root)]
