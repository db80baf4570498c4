"""MMSeg's ``init_cfg: {type: Pretrained, checkpoint, prefix}`` and ``pretrained:``: backbone weights from a local
safetensors file, checked against the backbone when the model is built (also on the meta device, by ``trainline
check``, which reads only the file's header)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.weights import describe

_PATH = "model.init_cfg"
_KEYS = {"type", "checkpoint", "prefix"}


def pretrained_spec(init_cfg: Any, pretrained: Any) -> tuple[Path, str] | None:
    """`(checkpoint path, key prefix)` of `model.init_cfg` / `model.pretrained`, or None when neither is set.

    `pretrained: FILE` is MMSeg's shorthand for `init_cfg: {type: Pretrained, checkpoint: FILE}` on the backbone;
    setting both is refused, as MMSeg does."""
    if pretrained is not None:
        if init_cfg is not None:
            raise ValueError("model.pretrained: set either pretrained or init_cfg, not both (pretrained: FILE is "
                             "the shorthand of init_cfg: {type: Pretrained, checkpoint: FILE})")
        if not isinstance(pretrained, str) or not pretrained:
            raise ValueError(f"model.pretrained: must be the path of a .safetensors file, got {pretrained!r}")
        init_cfg = {"type": "Pretrained", "checkpoint": pretrained}
    if init_cfg is None:
        return None
    if not isinstance(init_cfg, dict) or init_cfg.get("type") != "Pretrained":
        raise ValueError(f"{_PATH}: must be {{type: Pretrained, checkpoint: FILE.safetensors, prefix: ...}} (the "
                         f"only initialisation here is loading pretrained weights), got {init_cfg!r}")
    unknown = sorted(set(init_cfg) - _KEYS)
    if unknown:
        raise ValueError(f"{_PATH}.{unknown[0]}: not a Pretrained setting; valid: type, checkpoint, prefix")
    checkpoint, prefix = init_cfg.get("checkpoint"), init_cfg.get("prefix", "")
    if not isinstance(checkpoint, str) or not checkpoint:
        raise ValueError(f"{_PATH}.checkpoint: must be the path of a .safetensors file, got {checkpoint!r}")
    if not isinstance(prefix, str):
        raise ValueError(f"{_PATH}.prefix: must be a string such as 'backbone.', got {prefix!r}")
    path = Path(checkpoint)
    if path.suffix != ".safetensors":
        raise ValueError(f"{_PATH}.checkpoint: {checkpoint} is not a .safetensors file (.pth files are pickles; "
                         f"convert them with safetensors.torch.save_file)")
    if not path.is_file():
        raise ValueError(f"{_PATH}.checkpoint: {checkpoint} not found (paths are relative to the directory the "
                         f"stage runs in)")
    return path, prefix


def load_pretrained(backbone: nn.Module, path: Path, prefix: str) -> None:
    """Load the `prefix`-ed tensors of `path` (prefix stripped) into `backbone`, as MMEngine's PretrainedInit.

    Missing or mis-shaped backbone keys are refused (ValueError naming `model.init_cfg.checkpoint`); keys the
    backbone does not have (a classifier head of an ImageNet checkpoint) are skipped with a warning, as MMEngine's
    non-strict load does. On the meta device (the check) only the file's header is read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            names = [k for k in handle.keys() if k.startswith(prefix)]  # noqa: SIM118 - safe_open is not a dict
            shapes = {k[len(prefix):]: tuple(handle.get_slice(k).get_shape()) for k in names}
            meta = any(p.is_meta for p in backbone.parameters())
            tensors = {} if meta else {k[len(prefix):]: handle.get_tensor(k) for k in names}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{_PATH}.checkpoint: {path} is not a readable safetensors file ({exc})") from None
    own = backbone.state_dict()
    if not shapes:
        raise ValueError(f"{_PATH}.checkpoint: {path} has no tensor whose name starts with prefix {prefix!r}"
                         + (f" (set {_PATH}.prefix to the part before the backbone's names)" if not prefix else
                            "; check model.init_cfg.prefix"))
    missing = sorted(set(own) - set(shapes))
    unexpected = sorted(set(shapes) - set(own))
    shaped = sorted(k for k in set(own) & set(shapes) if tuple(own[k].shape) != shapes[k])
    if missing or shaped:
        sized = {k: torch.empty(shapes[k], device="meta") for k in shaped}  # describe() reads only the shapes
        detail = describe(missing, unexpected, shaped, backbone, sized)
        raise ValueError(f"{_PATH}.checkpoint: {path} (prefix {prefix!r}) does not fit the backbone ({detail})")
    if unexpected:
        logging.getLogger("trainline").warning("%s.checkpoint: %s: %d tensors the backbone does not have are "
                                               "skipped: %s", _PATH, path, len(unexpected),
                                               ", ".join(unexpected[:3]))
    if not meta:
        backbone.load_state_dict({k: v for k, v in tensors.items() if k in own})
