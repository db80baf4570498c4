"""IoUMetric against hand-computed confusion matrices, with MMSegmentation's NaN and rounding conventions."""

from __future__ import annotations

import math

import pytest
import torch

from engine.seg.metrics import IoUMetric

NAMES = ["bg", "a", "b", "c"]


def test_hand_computed_with_absent_class_and_ignore():
    metric = IoUMetric(4, NAMES, ignore_index=255)
    gt = torch.tensor([[0, 0, 0, 1], [1, 1, 2, 255]])
    pred = torch.tensor([[0, 0, 1, 1], [1, 2, 2, 3]])  # the ignored pixel's prediction (3) must not count
    metric.update(pred, gt)
    expected = torch.tensor([[2, 1, 0, 0], [0, 2, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert torch.equal(metric.confusion_matrix, expected)
    r = metric.compute()
    # IoU: bg 2/3, a 2/(3+3-2)=1/2, b 1/(1+2-1)=1/2, c 0/0 -> NaN (absent from gt and prediction).
    assert r["IoU.bg"] == 66.67 and r["IoU.a"] == 50.0 and r["IoU.b"] == 50.0 and math.isnan(r["IoU.c"])
    assert r["mIoU"] == round((2 / 3 + 0.5 + 0.5) / 3 * 100, 2) == 55.56
    # Acc: bg 2/3, a 2/3, b 1/1, c NaN.
    assert r["Acc.bg"] == 66.67 and r["Acc.a"] == 66.67 and r["Acc.b"] == 100.0 and math.isnan(r["Acc.c"])
    assert r["mAcc"] == round((2 / 3 + 2 / 3 + 1) / 3 * 100, 2) == 77.78
    assert r["aAcc"] == round(5 / 7 * 100, 2) == 71.43


def test_predicted_but_absent_class_counts_as_zero_iou():
    # Class c never occurs in gt but is predicted: IoU 0 (kept in mIoU), accuracy NaN (dropped from mAcc).
    metric = IoUMetric(4, NAMES)
    metric.update(torch.tensor([0, 3, 1, 1]), torch.tensor([0, 0, 1, 1]))
    r = metric.compute()
    assert r["IoU.c"] == 0.0 and math.isnan(r["Acc.c"]) and math.isnan(r["IoU.b"])
    assert r["mIoU"] == round((0.5 + 1.0 + 0.0) / 3 * 100, 2) == 50.0
    assert r["mAcc"] == round((0.5 + 1.0) / 2 * 100, 2) == 75.0
    assert r["aAcc"] == 75.0


def test_accumulates_batches_merge_and_reset():
    gt = torch.randint(0, 4, (3, 5, 6), generator=torch.Generator().manual_seed(0))
    pred = torch.randint(0, 4, (3, 5, 6), generator=torch.Generator().manual_seed(1))
    whole = IoUMetric(4, NAMES)
    whole.update(pred, gt)
    first, second = IoUMetric(4, NAMES), IoUMetric(4, NAMES)
    first.update(pred[:1], gt[:1])
    second.update(pred[1:], gt[1:])
    first.merge(second.confusion_matrix)
    assert torch.equal(first.confusion_matrix, whole.confusion_matrix)
    assert first.compute() == whole.compute()
    assert int(whole.confusion_matrix.sum()) == gt.numel()
    whole.reset()
    assert int(whole.confusion_matrix.sum()) == 0


def test_perfect_prediction_and_empty():
    metric = IoUMetric(4, NAMES)
    assert math.isnan(metric.compute()["mIoU"])
    gt = torch.tensor([[0, 1], [2, 3]])
    metric.update(gt.clone(), gt)
    r = metric.compute()
    assert r["mIoU"] == r["mAcc"] == r["aAcc"] == 100.0


def test_rejects_bad_input():
    metric = IoUMetric(4, NAMES)
    with pytest.raises(ValueError, match="shape"):
        metric.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        metric.update(torch.zeros(2, dtype=torch.long), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="class names"):
        IoUMetric(3, NAMES)
