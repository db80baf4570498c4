"""Semantic-segmentation metrics computed from a confusion matrix, reported the way MMSegmentation does."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch


class IoUMetric:
    """Accumulates a ``num_classes x num_classes`` confusion matrix (rows: ground truth, columns: prediction).

    ``confusion_matrix`` is public so a distributed evaluator can all-reduce (sum) it across ranks, or fold in
    another rank's matrix with :meth:`merge`, before calling :meth:`compute`.

    For the eval stage's MLflow run, :meth:`artifacts` writes the per-class table and prediction overlays of the
    first ``num_overlays`` samples of the evaluation (0: none).
    """

    # The metrics shown, written to metrics/*.json, plotted and compared (unless `eval.headline` chooses others).
    headline = ("aAcc", "mIoU", "mAcc")

    def __init__(self, num_classes: int, classes: list[str] | None = None, ignore_index: int = 255,
                 num_overlays: int = 4) -> None:
        if num_overlays < 0:
            raise ValueError(f"num_overlays must be 0 or more, got {num_overlays}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        class_names = list(classes) if classes is not None else [str(i) for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"got {len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.class_names = class_names
        self.ignore_index = ignore_index
        self.num_overlays = num_overlays
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

    def artifacts(self, out_dir: Path) -> list[Path]:
        """``per_class.md`` and ``per_class.json`` (IoU and Acc per class, in percent; NaN: absent, as null) and
        ``overlays/sample_<i>.png`` (image | ground truth | prediction) for the first samples evaluated."""
        from engine.seg.visualize import write_overlay

        results = self.compute()
        rows = {name: {m: results[f"{m}.{name}"] for m in ("IoU", "Acc")} for name in self.class_names}
        table = ["| class | IoU | Acc |", "|---|---|---|"]
        table += [f"| {name} | {_cell(r['IoU'])} | {_cell(r['Acc'])} |" for name, r in rows.items()]
        table.append(f"| **mean** | {_cell(results['mIoU'])} | {_cell(results['mAcc'])} |")
        (out_dir / "per_class.md").write_text("\n".join(table) + f"\n\naAcc: {_cell(results['aAcc'])}\n",
                                              encoding="utf-8")
        clean = {n: {m: (None if math.isnan(v) else v) for m, v in r.items()} for n, r in rows.items()}
        (out_dir / "per_class.json").write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")
        paths = [out_dir / "per_class.md", out_dir / "per_class.json"]
        for i, (image, gt, pred) in enumerate(self._samples):
            write_overlay(out_dir / "overlays" / f"sample_{i}.png", image, gt, pred, self.num_classes,
                          self.ignore_index)
        if self._samples:
            paths.append(out_dir / "overlays")
        return paths

    def update(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        """Add a batch of predicted and ground-truth label maps (same shape, e.g. ``N x H x W``)."""
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

    def compute(self) -> dict[str, float]:
        """``aAcc``, ``mIoU``, ``mAcc`` and per-class ``IoU.<name>`` / ``Acc.<name>``, in percent, 2 decimals.

        As in MMSegmentation, a class whose IoU union is empty (absent from both prediction and ground truth) has
        NaN IoU and a class absent from the ground truth has NaN accuracy; NaNs are left out of the means.
        """
        cm = self.confusion_matrix.detach().cpu().double().numpy()
        intersect = np.diag(cm)
        area_label = cm.sum(axis=1)
        area_pred = cm.sum(axis=0)
        union = area_label + area_pred - intersect
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = intersect / union
            acc = intersect / area_label
            a_acc = intersect.sum() / area_label.sum()
        results = {
            "aAcc": _pct(a_acc),
            "mIoU": _pct(_nanmean(iou)),
            "mAcc": _pct(_nanmean(acc)),
        }
        for name, i, a in zip(self.class_names, iou, acc, strict=True):
            results[f"IoU.{name}"] = _pct(i)
            results[f"Acc.{name}"] = _pct(a)
        return results


def _cell(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def _nanmean(values: np.ndarray) -> float:
    # np.nanmean warns on an all-NaN slice; an empty evaluation should just report NaN.
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _pct(value: float) -> float:
    return float(np.round(float(value) * 100, 2))
