"""`trainline dvc-params`: rewrite only the `params:` lists of dvc.yaml's stages so each lists, for every key it reads,
each file of the params closure that holds it; the rest of dvc.yaml stays as written, comments included."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

from engine.config.dvc_params import DEFAULT_PARAMS_FILE, StagePlan, listed_params, outside_project, plan
from engine.config.yaml_io import _Loader, flow_yaml
from engine.errors import ConfigError, UserError


def dvc_params(params: str | Path, write: bool = True) -> tuple[list[str], bool]:
    """(what changes per stage plus notes, whether dvc.yaml changes); with `write`, dvc.yaml is replaced
    atomically."""
    outside = outside_project(params)
    if outside:
        raise ConfigError(outside)
    plans = plan(params)
    dvc_yaml = Path(params).resolve().parent / "dvc.yaml"
    if not plans:
        return [f"{dvc_yaml}: no stage reads {params}; nothing to do"], False
    text = dvc_yaml.read_text(encoding="utf-8")
    new_text = rewrite(text, {p.name: p for p in plans})
    lines = []
    for p in plans:
        added = [e for e in p.wanted if e not in p.listed]
        dropped = [e for e in p.listed if e not in p.wanted and e not in p.kept]
        lines += [f"stages.{p.name}: + {f}: {k}" for f, k in added]
        lines += [f"stages.{p.name}: - {f}: {k}" for f, k in dropped]
        lines += [f"note: stages.{p.name} reads {k}, which no file of {params} and its includes holds (the engine's "
                  f"default applies); it is no longer listed: list it again once a file sets it" for k in p.unheld]
    changed = new_text != text
    if changed and write:
        _write_atomically(dvc_yaml, new_text)
    return lines, changed


def rewrite(text: str, plans: dict[str, StagePlan]) -> str:
    """`text` (a dvc.yaml) with each planned stage's `params:` value replaced by its wanted listing."""
    root = yaml.compose(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    stages = _value(root, "stages") if isinstance(root, yaml.MappingNode) else None
    if not isinstance(stages, yaml.MappingNode):
        raise UserError("dvc.yaml: needs a `stages:` mapping")
    edits: list[tuple[int, int, str]] = []  # (start index, end index, replacement) in the text
    for key_node, stage in stages.value:
        if key_node.value not in plans or not isinstance(stage, yaml.MappingNode):
            continue
        found = next(((k, v) for k, v in stage.value if k.value == "params"), None)
        if found is None or not isinstance(found[1], yaml.SequenceNode):
            continue
        edits.append(_edit(text, found[0], found[1], plans[key_node.value]))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def _value(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    return next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)


def _edit(text: str, key: yaml.Node, seq: yaml.SequenceNode, p: StagePlan) -> tuple[int, int, str]:
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for text_line in lines:
        offsets.append(offsets[-1] + len(text_line))
    if seq.flow_style or not seq.value:
        dash = " " * (key.start_mark.column + 2)
        block = _block(p, dash, {}, [])
        start = seq.start_mark.index
        while start > 0 and text[start - 1] == " ":
            start -= 1  # no space left after `params:`
        return start, seq.end_mark.index, "\n" + block.rstrip("\n")
    first = key.start_mark.line + 1
    last = max(_last_line(item) for item in seq.value)
    first_item_line = lines[seq.value[0].start_mark.line]
    dash = first_item_line[:len(first_item_line) - len(first_item_line.lstrip())]
    comments: dict[str, list[str]] = {}
    kept_text: list[str] = []
    pending: list[str] = []  # comment lines waiting for the next key below them
    line = first
    for item in seq.value:
        end = _last_line(item)
        entries = listed_params([_plain(item)])
        ours = bool(entries) and all(e not in p.kept for e in entries)
        keys = _key_lines(item) if ours else {}
        for i in range(line, end + 1):
            if lines[i].strip().startswith("#"):
                pending.append(lines[i])
            elif ours and i in keys:
                comments.setdefault(keys[i], []).extend(pending)  # kept with the key, wherever it is listed now
                pending = []
        if not ours:  # the user's own entry (another file, a whole file): its text as it was
            kept_text += [text_line for text_line in lines[line:end + 1] if text_line.strip()]
            pending = []
        line = end + 1
    return offsets[first], offsets[last + 1], _block(p, dash, comments, kept_text)


def _key_lines(item: yaml.Node) -> dict[int, str]:
    """The line of each key an item lists (a bare key, or each key under `- file:`)."""
    if isinstance(item, yaml.ScalarNode):
        return {item.start_mark.line: str(item.value)}
    found: dict[int, str] = {}
    if isinstance(item, yaml.MappingNode):
        for pair in item.value:
            keys: yaml.Node = pair[1]
            if isinstance(keys, yaml.SequenceNode):
                found.update({k.start_mark.line: str(k.value) for k in keys.value if isinstance(k, yaml.ScalarNode)})
    return found


def _plain(item: yaml.Node) -> object:
    """The item as data (a key string, or {file: [keys]}; anything else lists nothing of ours)."""
    return yaml.load(yaml.serialize(item), Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass


def _last_line(node: yaml.Node) -> int:
    """The line of the last character of `node` (a block node's end mark is the start of what follows)."""
    if isinstance(node, yaml.ScalarNode):
        return node.end_mark.line
    children = node.value if isinstance(node, yaml.SequenceNode) else [v for pair in node.value for v in pair]
    return max((_last_line(c) for c in children), default=node.start_mark.line)


def _block(p: StagePlan, dash: str, comments: dict[str, list[str]], kept_text: list[str]) -> str:
    out: list[str] = []
    groups: dict[str, list[str]] = {}
    for file, key in p.wanted:
        groups.setdefault(file, []).append(key)

    def emit_comments(key: str, indent: str) -> None:
        for comment in comments.pop(key, []):
            out.append(f"{indent}{comment.strip()}\n")

    for file, keys in groups.items():
        if file == DEFAULT_PARAMS_FILE:
            for key in keys:
                emit_comments(key, dash)
                out.append(f"{dash}- {flow_yaml(key)}\n")
        else:
            out.append(f"{dash}- {flow_yaml(file)}:\n")
            for key in keys:
                emit_comments(key, dash + "    ")
                out.append(f"{dash}    - {flow_yaml(key)}\n")
    return "".join(out + kept_text)


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` in one step (a crash leaves the old or the new file, never half of one)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

