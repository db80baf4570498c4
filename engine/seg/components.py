"""The segmentation example's short names: what `type: UNet`, `type: SegDataset`, ... in params.yaml stand for."""

from __future__ import annotations

# Dotted paths, imported only when a config names them, so the engine core never imports this package on its own.
COMPONENTS: dict[str, dict[str, str]] = {
    "model": {
        "UNet": "engine.seg.models.unet.UNet",
        "FCN": "engine.seg.models.fcn.FCN",
        "ViTSegmenter": "engine.seg.models.vit.ViTSegmenter",
        "ConvNeXtSegmenter": "engine.seg.models.convnext.ConvNeXtSegmenter",
        "SegFormer": "engine.seg.models.segformer.SegFormer",
    },
    "dataset": {"SegDataset": "engine.seg.dataset.SegDataset"},
    "evaluator": {"IoUMetric": "engine.seg.metrics.IoUMetric"},
    "prepare": {
        "SyntheticShapes": "engine.seg.synthetic.generate_dataset",
        "SegFolder": "engine.seg.folder.prepare_folder",
    },
    "hook": {"SegVisualizationHook": "engine.seg.visualization_hook.SegVisualizationHook"},
}

# Hooks here that only observe training (drawing pictures): their settings do not shape the weights, so changing
# them resumes the same training instead of starting a new one (see engine.config.schema.training_identity).
OBSERVING_HOOKS = ("SegVisualizationHook",)
