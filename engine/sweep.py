"""Which sweep a DVC experiment belongs to: the `trainline.sweep` tag shared by the runs of one `dvc exp run` grid."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.config import flatten, parse_yaml
from engine.errors import UserError
from engine.git import git_output

# DVC names the runs of a named grid `NAME-1`, `NAME-2`, ... (`dvc exp run --queue -n NAME -S a=1,2`); its random
# names are `adjective-noun`, never ending in a number.
_NUMBERED = re.compile(r"(.+)-[0-9]+")


def changed_keys(params: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """Dotted keys (`optim.lr`) whose value differs from the baseline's, added and removed keys included."""
    now, before = flatten(params), flatten(baseline)
    return sorted(k for k in now.keys() | before.keys() if k not in now or k not in before or now[k] != before[k])


def sweep_tag(env: Mapping[str, str] = os.environ, params_file: str | Path = "params.yaml") -> str | None:
    """`<baseline rev>:<what varies>` for a run under `dvc exp run`, else None (a plain `dvc repro`).

    DVC expands a grid into separate queued experiments and tells each executor only its name and baseline
    (`DVC_EXP_NAME`, `DVC_EXP_BASELINE_REV`), so the sweep is derived from what every member of the grid shares:
    its baseline commit and which params.yaml keys it changes from that commit's params.yaml (`a1b2c3d:optim.lr,
    optim.weight_decay`). A grid point that repeats the baseline's own value of a key does not count that key; naming
    the grid (`-n NAME`, which DVC turns into `NAME-1`, `NAME-2`, ...) groups by the name instead (`a1b2c3d:NAME`).
    """
    baseline_rev = env.get("DVC_EXP_BASELINE_REV")
    if not baseline_rev:
        return None
    rev = baseline_rev[:7]
    numbered = _NUMBERED.fullmatch(env.get("DVC_EXP_NAME", ""))
    if numbered:
        return f"{rev}:{numbered.group(1)}"
    path = Path(params_file)
    baseline_text = _git_show(baseline_rev, path)
    if baseline_text is None or not path.is_file():
        return None
    try:
        current = parse_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
        baseline = parse_yaml(baseline_text, f"{rev}:{path}") or {}
    except (UserError, OSError):
        return None
    if not isinstance(current, dict) or not isinstance(baseline, dict):
        return None
    return f"{rev}:{','.join(changed_keys(current, baseline)) or 'baseline'}"[:5000]  # MLflow's tag limit is 8000


def _git_show(rev: str, path: Path) -> str | None:
    """The file at `rev` (a queued executor is a git clone holding the baseline commit), or None."""
    return git_output(path.resolve().parent, "show", f"{rev}:./{path.name}")
