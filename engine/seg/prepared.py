"""The prepared segmentation data on disk: opening its `.npy` arrays with their sizes checked, the per-sample label
check, and the error both raise (one line naming the file, the sample and the fix)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from engine.errors import UserError

RERUN = "rerun the prepare stage (`dvc repro prepare`)"


class PreparedDataError(UserError):
    """Prepared data that cannot be what `prepare` wrote (truncated, corrupt, or written for other classes).

    A DataLoader worker re-raises an exception as ``type(exc)(f"Caught ... Original Traceback ...")``; this class
    keeps only the original message from such text, so the stage still prints one line, not a worker's traceback.
    """

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        if message.startswith("Caught ") and marker in message:
            message = message.rstrip().rsplit(marker, 1)[-1]
        super().__init__(message)


def open_npy(path: Path, *, dtype: np.dtype | type, ndim: int) -> np.ndarray:
    """Memory-map ``path`` after checking that the file holds as many bytes as its header describes.

    numpy's own failure for a truncated file is ``mmap length is greater than file size``, which names neither the
    file nor the cause; a file cut short by an interrupted copy or a full disk is the usual one.
    """
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)  # 3.0 differs only in the header's encoding
            shape, fortran, file_dtype = read_header(fh)
            header_end = fh.tell()
    except (ValueError, OSError, SyntaxError) as exc:
        raise PreparedDataError(f"data.root: {path} is not a readable .npy array ({exc}); {RERUN}") from None
    if file_dtype != np.dtype(dtype) or len(shape) != ndim or fortran:
        raise PreparedDataError(f"data.root: {path} holds a {'x'.join(map(str, shape)) or 'scalar'} {file_dtype} "
                                f"array, expected {ndim} dimensions of {np.dtype(dtype)}; {RERUN}")
    expected = header_end + int(np.prod(shape, dtype=np.int64)) * file_dtype.itemsize
    actual = os.path.getsize(path)
    if actual != expected:
        raise PreparedDataError(f"data.root: {path} is {actual} bytes, but its header describes a "
                                f"{'x'.join(map(str, shape))} {file_dtype} array of {expected} bytes (the file is "
                                f"{'truncated' if actual < expected else 'longer than its array'}); {RERUN}")
    return np.load(path, mmap_mode="r")


def check_labels(mask: np.ndarray, num_classes: int, ignore_index: int, where: str) -> None:
    """Refuse labels outside ``[0, num_classes)`` other than ``ignore_index``: cross_entropy would otherwise fail
    with ``Target 9 is out of bounds`` deep inside the loss. Costs one ``max()`` over the mask when the labels are
    in range and no ignore pixels are present; a second pass only when the maximum is not a valid label."""
    top = int(mask.max()) if mask.size else 0
    if top < num_classes:
        return
    bad = (mask >= num_classes) & (mask != ignore_index)
    if not bad.any():
        return
    values = np.unique(mask[bad])
    shown = ", ".join(map(str, values[:5].tolist())) + (", ..." if len(values) > 5 else "")
    raise PreparedDataError(f"data.root: {where}: labels {shown} outside 0..{num_classes - 1} ({num_classes} "
                            f"classes, {ignore_index} = ignore); the prepared data is corrupt or was written for "
                            f"other classes: {RERUN}")


def hash_arrays(paths: list[Path]) -> str:
    """sha256 of the files' names and bytes, in the given order: the `content_hash` of meta.json."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def replace_dir(tmp: Path, out_dir: Path) -> None:
    """Swap the finished temp dir into place; an existing ``out_dir`` is moved aside first, then deleted."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "data")
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
