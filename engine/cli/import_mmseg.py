"""`trainline import-mmseg`: an MMSeg Python config -> params.yaml text, plus one line per key that did not map.

The imported sections alone are not a whole project (the dataset, the evaluator's classes, MLflow), so `--base FILE`
makes the output start with `_base_: FILE` (relative to the output's folder): the imported sections replace the
base's (`_delete_: true` on each mapped section and hook, since MMSeg's config states them in full; `data` merges,
its keys being plain settings), everything else comes from the base. With the shipped params.yaml as the base, the
result passes `trainline check` whenever the mapped parts are complete.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from engine.cli.mmcfg_reader import read_config
from engine.cli.mmseg_mapping import Mapping, map_config
from engine.errors import UserError

# Sections an MMSeg config states in full: they replace the base's instead of merging into it.
_REPLACED = ("model", "evaluator", "optim", "optim_wrapper", "train_cfg", "val_cfg", "test_cfg")


def import_mmseg(config: Path, base: Path | None = None, output: Path | None = None) -> tuple[str, list[str]]:
    """(params.yaml text, stderr lines) for the MMSeg config file `config`; `output` only places `_base_`."""
    from engine.config import dump_yaml, load_params

    mapping = map_config(read_config(config))
    params: dict[str, Any] = mapping.params
    if base is not None:
        _fit_num_classes(params, load_params(base), mapping)
        folder = (output.parent if output is not None else Path.cwd()).resolve()
        params = {"_base_": Path(os.path.relpath(base.resolve(), folder)).as_posix(), **_replacing(params)}
    header = (f"# Imported from {config.name} by `trainline import-mmseg`; "
              f"{len(mapping.unmapped)} key(s) not mapped (listed when it ran).\n")
    return header + dump_yaml(params), mapping.lines()


def write_new(path: Path, text: str, force: bool) -> None:
    """Write `path` atomically (temp file + rename); an existing file only with `force`."""
    if path.exists() and not force:
        raise UserError(f"{path}: exists; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_paths(config: Path, base: Path | None, output: Path | None) -> None:
    """Refuse outputs that would overwrite the config or make the base include itself."""
    if output is None:
        return
    out = output.resolve()
    if out == config.resolve():
        raise UserError(f"{output}: is the MMSeg config itself; write the params elsewhere")
    if base is not None and out == base.resolve():
        raise UserError(f"{output}: is also --base, which would include itself; write the import to another file "
                        f"(e.g. configs/imported.yaml) and keep the base")


def _fit_num_classes(params: dict[str, Any], base_cfg: dict[str, Any], mapping: Mapping) -> None:
    """A base with data.classes offers num_classes to the model: the model must not state it again."""
    model, classes = params.get("model"), (base_cfg.get("data") or {}).get("classes")
    if not isinstance(model, dict) or "num_classes" not in model or not isinstance(classes, list):
        return
    n = model.pop("num_classes")
    if n != len(classes):
        mapping.skip("model.decode_head.num_classes", f"{n}, but the base's data.classes names {len(classes)} "
                                                      f"classes; set data.classes to this dataset's {n} class names")


def _replacing(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        if key in _REPLACED and isinstance(value, dict):
            value = {"_delete_": True, **value}
        elif key == "default_hooks" and isinstance(value, dict):
            value = {name: {"_delete_": True, **hook} if isinstance(hook, dict) else hook
                     for name, hook in value.items()}
        out[key] = value
    return out
