"""Base class of the bundled segmentation models: label maps in predict mode, a dict of losses in loss mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.seg.inference import slide_logits
from engine.seg.models.heads import FCNHead, build_auxiliary_head
from engine.seg.models.pretrained import load_pretrained, pretrained_spec

_TEST_PATH = "model.test_cfg"


def parse_test_cfg(test_cfg: Any) -> tuple[str, tuple[int, int] | None, tuple[int, int] | None]:
    """`(mode, crop, stride)` of MMSeg's `test_cfg: {mode: whole|slide, crop_size, stride}` (sizes: int or [h, w])."""
    if test_cfg is None:
        return "whole", None, None
    if not isinstance(test_cfg, dict):
        raise ValueError(f"{_TEST_PATH}: must be a mapping like {{mode: slide, crop_size: [h, w], stride: [h, w]}}, "
                         f"got {test_cfg!r}")
    unknown = sorted(set(test_cfg) - {"mode", "crop_size", "stride"})
    if unknown:
        raise ValueError(f"{_TEST_PATH}.{unknown[0]}: not a test_cfg setting; valid: mode, crop_size, stride")
    mode = test_cfg.get("mode", "whole")
    if mode not in ("whole", "slide"):
        raise ValueError(f"{_TEST_PATH}.mode: must be whole or slide, got {mode!r}")
    if mode == "whole":
        return "whole", None, None
    sizes = []
    for key in ("crop_size", "stride"):
        value = test_cfg.get(key)
        pair = [value, value] if isinstance(value, int) else value
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair)):
            raise ValueError(f"{_TEST_PATH}.{key}: slide mode needs a positive integer or [height, width], got "
                             f"{value!r}")
        sizes.append((pair[0], pair[1]))
    return "slide", sizes[0], sizes[1]


class SegmentationModel(nn.Module):
    """A segmenter whose ``forward`` does both jobs, so a DDP wrapper sees the loss computed inside forward.

    Subclasses implement :meth:`predict_logits` (``(N, 3, H, W) -> (N, C, H, W)``, same spatial size as the input),
    or :meth:`extract_feats` (the backbone's feature maps) and :meth:`decode` (the decode head), which an auxiliary
    head needs. A batch is ``(images, masks)``. ``forward(batch, mode="loss")`` returns ``{"loss_ce": ...}`` plus
    ``aux.loss_ce`` (already multiplied by its ``loss_weight``) with an auxiliary head; keys containing ``loss`` are
    summed into the training loss by the engine. ``forward(batch, mode="predict")`` returns the predicted label maps
    ``(N, h, w)`` at the masks' size, what the evaluator scores (smaller to gather across processes than logits);
    ``test_cfg`` chooses whole-image or sliding-window logits, as MMSeg's.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, test_cfg: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.test_mode, self.crop_size, self.stride = parse_test_cfg(test_cfg)
        self.auxiliary_head: FCNHead | None = None
        self.aux_weight = 0.0

    # -- what subclasses provide ----------------------------------------------------------------------------------
    def extract_feats(self, images: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def decode(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        raise NotImplementedError

    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.extract_feats(images), (images.shape[-2], images.shape[-1]))

    # -- set up by subclasses at the end of __init__ --------------------------------------------------------------
    def add_auxiliary_head(self, cfg: dict[str, Any] | None, feature_channels: Sequence[int]) -> None:
        """MMSeg's `auxiliary_head` (an FCNHead) on `extract_feats(...)[in_index]`; None: no auxiliary head."""
        if cfg is not None:
            self.auxiliary_head, self.aux_weight = build_auxiliary_head(cfg, feature_channels, self.num_classes)

    def init_backbone(self, init_cfg: dict[str, Any] | None, pretrained: str | None) -> None:
        """Load `self.backbone` from `init_cfg` / `pretrained`, if set (after the backbone's own initialisation)."""
        spec = pretrained_spec(init_cfg, pretrained)
        if spec is not None:
            backbone = self.backbone
            assert isinstance(backbone, nn.Module)
            load_pretrained(backbone, *spec)

    # -- forward ---------------------------------------------------------------------------------------------------
    def inference_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits at the input's size, whole-image or sliding-window as `test_cfg` says."""
        if self.test_mode == "whole":
            return self.predict_logits(images)
        assert self.crop_size is not None and self.stride is not None
        return torch.stack([slide_logits(self.predict_logits, image, self.crop_size, self.stride)
                            for image in images])

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor | None], mode: str = "predict") -> Any:
        images, masks = batch
        if mode == "predict":
            logits = self.inference_logits(images)
            # The test pipeline may resize images only; labels are scored at their own resolution, as in MMSeg.
            return _resized(logits, masks).argmax(dim=1)
        if mode != "loss":
            raise ValueError(f"mode must be 'loss' or 'predict', got {mode!r}")
        assert masks is not None, "loss mode needs the label maps"
        if self.auxiliary_head is None:
            return self.loss(self.predict_logits(images), masks)
        feats = self.extract_feats(images)
        losses = self.loss(self.decode(feats, (images.shape[-2], images.shape[-1])), masks)
        aux = self.loss(self.auxiliary_head(feats), masks)["loss_ce"]
        losses["aux.loss_ce"] = self.aux_weight * aux
        return losses

    def loss(self, logits: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms for `logits` (resized to the masks' size when it differs) against the label maps."""
        logits = _resized(logits, masks)
        return {"loss_ce": F.cross_entropy(logits.float(), masks.long(), ignore_index=self.ignore_index)}


def _resized(logits: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
    """`logits` at the masks' size (no masks: predicting new images, the logits' own size)."""
    if masks is None or logits.shape[-2:] == masks.shape[-2:]:
        return logits
    return F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
