"""write_section replaces its own section of docs/benchmarks.md and leaves the others as written."""

from benchmarks.docs_section import write_section


def test_a_new_section_goes_before_the_gpu_section_and_a_rewrite_replaces_it(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nintro\n\n## Start-up\n\nfigures\n\n## GPU\n\nnone\n", encoding="utf-8")
    write_section(doc, ["## Peers", "", "first"])
    assert doc.read_text(encoding="utf-8") == (
        "# Benchmarks\n\nintro\n\n## Start-up\n\nfigures\n\n## Peers\n\nfirst\n\n## GPU\n\nnone\n")
    write_section(doc, ["## Peers", "", "second"])
    text = doc.read_text(encoding="utf-8")
    assert "second" in text and "first" not in text and text.count("## Peers") == 1
    assert text.endswith("## GPU\n\nnone\n") and "## Start-up\n\nfigures\n" in text


def test_without_a_gpu_section_the_section_is_appended(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Start-up\n\nfigures\n", encoding="utf-8")
    write_section(doc, ["## Checkpoints", "", "rows"])
    assert doc.read_text(encoding="utf-8") == "# Benchmarks\n\n## Start-up\n\nfigures\n\n## Checkpoints\n\nrows\n"
