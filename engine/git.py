"""Asking git about the project (commit, dirty state, a file at a revision): one runner for every caller."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_output(cwd: Path, *args: str) -> str | None:
    """The stdout of `git ARGS` run in `cwd`, or None when git is missing, fails or takes over 10 s (no repository,
    an unknown revision): callers treat that as "not known"."""
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout
