"""Atomic checkpoints: safetensors weights + a weights_only-loadable state file, then the `last_checkpoint` pointer.

A checkpoint is a directory `<work_dir>/iter_<n>/` holding `model.safetensors`, `state.pt` (optimizer, schedulers,
loop position, RNG states, hook states; plain tensors and containers only) and `meta.json`. It is written to a
temporary sibling, fsynced and renamed into place; only then is its pointer replaced (also by rename), so a kill at
any moment leaves the previous checkpoint intact and the pointer never names a partial one. Regular checkpoints
update `last_checkpoint` (what a resume continues from); best checkpoints (`best_<metric>_iter_<n>`) update their
own pointer (`best_checkpoint`, or `best_checkpoint_<metric>` with several metrics) and never `last_checkpoint`.

A save may go to the background (`CheckpointWriter`): the state is copied to host memory on the calling thread (the
state at that iteration, whatever training does next), then written, by the same atomic steps, by one writer thread
while training goes on. One write is in flight at most; every later save, background or not, first waits for it, so
pointers are replaced in order; its error is raised on the training thread at the next save, `check` or `wait`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from engine.errors import UserError

POINTER = "last_checkpoint"
BEST_POINTER = "best_checkpoint"
BEST_PREFIX = "best_"
# Where CheckpointHook's `publish` writes the final weights, beside the checkpoints (not a checkpoint itself).
PUBLISHED = "published"
# Below this much free space a failed write is taken for a full disk, whatever the library's own message says
# (torch.save reports ENOSPC as "PytorchStreamWriter failed writing file" / "iostream error", with no errno).
_FULL_BYTES = 64 * 2**20
# Test-only: seconds to pause between writing model.safetensors and state.pt, announced in the log first, so the kill
# tests can SIGKILL a trainer inside a checkpoint write by design rather than by luck. Unset in any real run.
SLOW_WRITE_ENV = "TRAINLINE_TEST_SLOW_CHECKPOINT_WRITE"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` so readers see the old or the new content, never a mix."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def safetensors_weights(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`weights` as safetensors can write them: detached, on the CPU, contiguous, and no two sharing memory.

    A tied model (one Parameter reached under two names, e.g. an embedding and an LM head) has two state-dict
    entries on one storage, which safetensors refuses; the second and later names get a copy. Loading puts the same
    values into the one Parameter under each name, so the model stays tied.
    """
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[str, int]] = set()
    for key, value in weights.items():
        tensor = value.detach().cpu().contiguous()
        storage = (str(tensor.device), tensor.untyped_storage().data_ptr())
        if storage in seen:
            tensor = tensor.clone()
        seen.add(storage)
        out[key] = tensor
    return out


def snapshot(obj: Any) -> Any:
    """`obj` with every tensor copied to host memory and every dict/list/tuple rebuilt: nothing in it shares memory
    or containers with the live model, optimizer or hooks."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(v) for v in obj)
    return obj


class CheckpointWriter:
    """One background writer thread, one write at a time (see the module docstring). The thread is not a daemon:
    the process does not exit before the write it runs is complete."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, write: Callable[[], Any]) -> None:
        """Run `write` in the background once the write before it is done."""
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(write,), name="checkpoint-writer")
        self._thread.start()

    def _run(self, write: Callable[[], Any]) -> None:
        try:
            write()
        except BaseException as exc:  # noqa: BLE001 - kept and raised on the training thread
            self._error = exc

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def check(self) -> None:
        """Raise the error of a finished background write, if it failed."""
        error, self._error = self._error, None
        if error is not None:
            raise error

    def wait(self) -> None:
        """Wait for the write in flight, then `check`."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.check()


def save_checkpoint(work_dir: Path, name: str, weights: dict[str, torch.Tensor], state: dict[str, Any],
                    meta: dict[str, Any], pointer: str = POINTER, writer: CheckpointWriter | None = None,
                    background: bool = False) -> Path:
    """Write checkpoint `name` atomically and point `pointer` (by default `last_checkpoint`) at it; returns its
    directory. With a `writer`, its write in flight finishes first; with `background` too, the state is snapshotted
    now and written by the writer (the directory appears when that write is done)."""
    if writer is not None:
        writer.wait()
        if background:
            weights, state, meta = snapshot(weights), snapshot(state), json.loads(json.dumps(meta))
            writer.submit(lambda: _save(work_dir, name, weights, state, meta, pointer))
            return work_dir / name
    return _save(work_dir, name, weights, state, meta, pointer)


def _save(work_dir: Path, name: str, weights: dict[str, torch.Tensor], state: dict[str, Any], meta: dict[str, Any],
          pointer: str) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    final = work_dir / name
    tmp = work_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_files(tmp, weights, state, meta)
    except (OSError, RuntimeError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        free = shutil.disk_usage(work_dir).free
        if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or free < _FULL_BYTES:
            last = work_dir / POINTER
            previous = last.read_text(encoding="utf-8").strip() if last.is_file() else ""
            kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
            raise UserError(f"no space left in {work_dir} ({free // 2**20} MB free) while writing checkpoint {name}; "
                            f"{kept}; free some space and rerun the same command to resume") from None
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    _fsync_dir(work_dir)
    atomic_write_text(work_dir / pointer, name)
    return final


def _write_files(tmp: Path, weights: dict[str, torch.Tensor], state: dict[str, Any], meta: dict[str, Any]) -> None:
    tmp.mkdir()
    save_file(safetensors_weights(weights), str(tmp / "model.safetensors"))
    pause = float(os.environ.get(SLOW_WRITE_ENV) or 0)
    if pause > 0:
        logging.getLogger("trainline").warning("%s: inside the write of %s for %gs (weights written, state not yet)",
                                               SLOW_WRITE_ENV, tmp.name, pause)
        time.sleep(pause)
    torch.save(state, tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    for child in tmp.iterdir():
        with open(child, "rb") as fh:
            os.fsync(fh.fileno())


def latest_checkpoint(work_dir: Path) -> Path | None:
    """The checkpoint `last_checkpoint` names, if both exist."""
    pointer = work_dir / POINTER
    if not pointer.is_file():
        return None
    path = work_dir / pointer.read_text(encoding="utf-8").strip()
    return path if (path / "meta.json").is_file() else None


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(weights, state, meta) of a checkpoint directory; nothing arbitrary is unpickled (weights_only=True)."""
    weights = load_file(str(path / "model.safetensors"))
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    return weights, state, meta


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as tensors and plain containers (weights_only-safe)."""
    py = random.getstate()
    np_state: Any = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
