"""Docs stay true: the params reference matches the schema, and the README opens with the two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

from engine.config.schema import KEYS, reference_table

ROOT = Path(__file__).resolve().parents[1]


def test_config_reference_matches_schema():
    text = (ROOT / "docs/config.md").read_text()
    assert reference_table() in text, "regenerate docs/config.md's table from engine.config.schema.reference_table()"
    for key in KEYS:
        assert f"`{key.path}`" in text


def test_readme_opens_with_demo_and_test_commands():
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]


def test_ci_calls_make_test():
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_architecture_names_only_paths_that_exist():
    text = (ROOT / "docs/architecture.md").read_text()
    paths = set(re.findall(r"`((?:engine|stages)/[\w/.]+)`", text))
    assert len(paths) > 10
    missing = [p for p in sorted(paths) if not (ROOT / p).exists()]
    assert missing == []


def test_own_project_guide_uses_real_init_options():
    from click.testing import CliRunner

    from engine.cli import main

    help_text = CliRunner().invoke(main, ["init", "--help"]).output
    text = (ROOT / "docs/own-project.md").read_text()
    init_part = text.split("## 2.")[0]
    rows = [line for line in init_part.splitlines() if line.startswith("| `--") or "trainline init" in line
            or line.startswith("               --")]
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", "\n".join(rows)))
    assert {"--model", "--dataset", "--evaluator", "--prepare", "--no-prepare", "--data-root"} <= options
    assert [o for o in sorted(options) if o not in help_text] == []


def test_config_reference_says_which_keys_shape_the_weights():
    from engine.config.schema import resume_identity_text

    assert resume_identity_text() in (ROOT / "docs/config.md").read_text()
