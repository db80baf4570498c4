"""Registry of the bundled segmentation models, keyed by the name used in configs."""

from engine.seg.models.base import SegmentationModel
from engine.seg.models.convnext import ConvNeXtSegmenter
from engine.seg.models.fcn import FCN
from engine.seg.models.segformer import MixVisionTransformer, SegFormer
from engine.seg.models.unet import UNet
from engine.seg.models.vit import ViTSegmenter

MODELS = {"UNet": UNet, "FCN": FCN, "ViTSegmenter": ViTSegmenter, "ConvNeXtSegmenter": ConvNeXtSegmenter,
          "SegFormer": SegFormer}

__all__ = ["FCN", "MODELS", "ConvNeXtSegmenter", "MixVisionTransformer", "SegFormer", "SegmentationModel", "UNet",
           "ViTSegmenter"]
