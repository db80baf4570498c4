"""Replace one `## ` section of docs/benchmarks.md (or add it before the GPU section), leaving the others as written."""

from __future__ import annotations

import re
from pathlib import Path

BEFORE = "## GPU"


def write_section(path: Path, lines: list[str]) -> None:
    """Put `lines` (starting with their `## Title` line) in place of the section of that title in `path`."""
    title = lines[0]
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    body = "\n".join(lines).rstrip("\n") + "\n\n"
    sections = re.split(r"(?m)^(?=## )", text)
    for i, section in enumerate(sections):
        if section.splitlines()[0:1] == [title]:
            sections[i] = body
            break
    else:
        at = next((i for i, s in enumerate(sections) if s.startswith(BEFORE)), len(sections))
        if at == len(sections) and not sections[-1].endswith("\n\n"):
            sections[-1] = sections[-1].rstrip("\n") + "\n\n"
        sections.insert(at, body)
    path.write_text("".join(sections).rstrip("\n") + "\n", encoding="utf-8")
