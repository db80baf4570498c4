"""Semantic-segmentation metrics computed from a confusion matrix, reported the way MMSegmentation does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

IOU_METRICS = ("mIoU", "mDice", "mFscore")
# The per-class values each choice adds (MMSeg's `total_area_to_metrics`): Acc comes with mIoU and mDice.
_PER_CLASS = {"mIoU": ("IoU", "Acc"), "mDice": ("Dice", "Acc"), "mFscore": ("Fscore", "Precision", "Recall")}


class IoUMetric:
    """Accumulates a ``num_classes x num_classes`` confusion matrix (rows: ground truth, columns: prediction).

    The matrix holds everything MMSegmentation's four area histograms do (intersect = diagonal, label = row sums,
    pred = column sums, union = label + pred - intersect), and sums exactly across batches and processes.
    ``confusion_matrix`` is public so a distributed evaluator can all-reduce (sum) it across ranks, or fold in
    another rank's matrix with :meth:`merge`, before calling :meth:`compute`.

    ``iou_metrics`` picks the families reported, as in MMSeg: ``mIoU`` (IoU, Acc), ``mDice`` (Dice, Acc),
    ``mFscore`` (Fscore with ``beta``, Precision, Recall). ``nan_to_num`` replaces the NaN of a class with an empty
    denominator by that number, which then counts in the means (MMSeg's option; default: NaN, left out).

    For the eval stage's MLflow run, :meth:`artifacts` writes the per-class table, the confusion-matrix plot and
    prediction overlays of the first ``num_overlays`` samples of the evaluation (0: none).
    """

    def __init__(self, num_classes: int, classes: list[str] | None = None, ignore_index: int = 255,
                 iou_metrics: Sequence[str] | str = ("mIoU",), nan_to_num: float | None = None, beta: float = 1,
                 num_overlays: int = 4) -> None:
        if num_overlays < 0:
            raise ValueError(f"num_overlays must be 0 or more, got {num_overlays}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        class_names = list(classes) if classes is not None else [str(i) for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"got {len(class_names)} class names for {num_classes} classes")
        chosen = [iou_metrics] if isinstance(iou_metrics, str) else list(iou_metrics)
        unknown = [m for m in chosen if m not in IOU_METRICS]
        if unknown or not chosen:
            raise ValueError(f"iou_metrics must be a non-empty list of {', '.join(IOU_METRICS)}; got {iou_metrics!r}")
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or beta <= 0:
            raise ValueError(f"beta must be a positive number (the F-score's recall weight), got {beta!r}")
        if nan_to_num is not None and (isinstance(nan_to_num, bool) or not isinstance(nan_to_num, (int, float))):
            raise ValueError(f"nan_to_num must be a number or null, got {nan_to_num!r}")
        self.num_classes = num_classes
        self.class_names = class_names
        self.ignore_index = ignore_index
        self.iou_metrics = list(dict.fromkeys(chosen))
        self.nan_to_num = nan_to_num
        self.beta = float(beta)
        self.num_overlays = num_overlays
        self.per_class_metrics = list(dict.fromkeys(m for c in self.iou_metrics for m in _PER_CLASS[c]))
        # What is shown, written to metrics/*.json, plotted and compared (unless `eval.headline` chooses others):
        # MMSeg's summary, in its order.
        self.headline = ("aAcc", *(f"m{m}" for m in self.per_class_metrics))
        self.reset()

    def reset(self) -> None:
        self.confusion_matrix = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self._samples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def process(self, batch: tuple[torch.Tensor, torch.Tensor], outputs: torch.Tensor) -> None:
        """Score one (gathered) batch: ``(images, masks)`` and the model's predicted label maps."""
        self.update(outputs, batch[1])
        for image, gt, pred in zip(batch[0], batch[1], outputs, strict=False):
            if len(self._samples) >= self.num_overlays:
                break
            self._samples.append((image.detach().cpu(), gt.detach().cpu(), pred.detach().cpu()))

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """Add a batch of predicted and ground-truth label maps (same shape, e.g. ``N x H x W``); pixels whose
        label is ``ignore_index`` are dropped, whatever was predicted there."""
        if pred.shape != gt.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} != gt shape {tuple(gt.shape)}")
        pred, gt = pred.reshape(-1).long(), gt.reshape(-1).long()
        valid = gt != self.ignore_index
        pred, gt = pred[valid], gt[valid]
        n = self.num_classes
        if gt.numel() and (int(gt.min()) < 0 or int(gt.max()) >= n or int(pred.min()) < 0 or int(pred.max()) >= n):
            raise ValueError(f"labels must lie in [0, {n}) or equal ignore_index={self.ignore_index}")
        counts = torch.bincount(gt * n + pred, minlength=n * n).reshape(n, n)
        # Accumulate on whatever device the inputs live on, so GPU evaluation needs no host round-trip per batch.
        if self.confusion_matrix.device != counts.device:
            self.confusion_matrix = self.confusion_matrix.to(counts.device)
        self.confusion_matrix += counts

    def merge(self, other_matrix: torch.Tensor) -> None:
        """Add another confusion matrix (e.g. from another rank) into this one."""
        if tuple(other_matrix.shape) != (self.num_classes, self.num_classes):
            expected = (self.num_classes, self.num_classes)
            raise ValueError(f"expected a {expected} matrix, got {tuple(other_matrix.shape)}")
        self.confusion_matrix += other_matrix.to(self.confusion_matrix.device, torch.int64)

    def per_class(self) -> dict[str, np.ndarray]:
        """The chosen per-class ratios (0..1, NaN where the denominator is empty unless `nan_to_num`), and `aAcc`
        as a one-element array: MMSeg's `total_area_to_metrics` on this matrix."""
        cm = self.confusion_matrix.detach().cpu().double().numpy()
        intersect = np.diag(cm)
        area_label = cm.sum(axis=1)
        area_pred = cm.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = {"aAcc": np.array([intersect.sum() / area_label.sum()]),
                      "IoU": intersect / (area_label + area_pred - intersect),
                      "Acc": intersect / area_label,
                      "Dice": 2 * intersect / (area_pred + area_label)}
            precision, recall = intersect / area_pred, intersect / area_label
            b2 = self.beta ** 2
            values.update(Precision=precision, Recall=recall,
                          Fscore=(1 + b2) * precision * recall / (b2 * precision + recall))
        chosen = {k: values[k] for k in ("aAcc", *self.per_class_metrics)}
        if self.nan_to_num is not None:
            chosen = {k: np.nan_to_num(v, nan=self.nan_to_num) for k, v in chosen.items()}
        return chosen

    def compute(self) -> dict[str, float]:
        """``aAcc`` and the means of the chosen metrics (``mIoU``, ``mAcc``, ``mDice``, ``mFscore``,
        ``mPrecision``, ``mRecall``), plus per-class ``IoU.<name>``, ``Acc.<name>``, ...: percent, 2 decimals.

        As in MMSegmentation, a class whose denominator is empty has NaN there (IoU and Dice: absent from both
        prediction and ground truth; Acc and Recall: absent from the ground truth; Precision: never predicted),
        and NaNs are left out of the means (`np.nanmean`).
        """
        values = self.per_class()
        results = {"aAcc": _pct(values["aAcc"][0])}
        for metric in self.per_class_metrics:
            results[f"m{metric}"] = _pct(_nanmean(values[metric]))
        for i, name in enumerate(self.class_names):
            for metric in self.per_class_metrics:
                results[f"{metric}.{name}"] = _pct(values[metric][i])
        return results

    def artifacts(self, out_dir: Path) -> list[Path]:
        """``per_class.md`` and ``per_class.json`` (the chosen metrics per class, in percent; NaN: shown as NaN,
        null in JSON), ``confusion_matrix.png`` (rows normalised) and ``overlays/sample_<i>.png`` (image | ground
        truth | prediction | overlay) for the first samples evaluated."""
        from engine.run_artifacts import write_confusion_matrix, write_per_class
        from engine.seg.visualize import write_overlay

        paths = write_per_class(self.compute(), out_dir, self.headline)
        paths.append(write_confusion_matrix(out_dir / "confusion_matrix.png",
                                            self.confusion_matrix.detach().cpu().numpy(), self.class_names))
        for i, (image, gt, pred) in enumerate(self._samples):
            write_overlay(out_dir / "overlays" / f"sample_{i}.png", image, gt, pred, self.num_classes,
                          self.ignore_index, class_names=self.class_names)
        if self._samples:
            paths.append(out_dir / "overlays")
        return paths


def _nanmean(values: np.ndarray) -> float:
    # np.nanmean warns on an all-NaN slice; an empty evaluation should just report NaN.
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _pct(value: float) -> float:
    return float(np.round(float(value) * 100, 2))
