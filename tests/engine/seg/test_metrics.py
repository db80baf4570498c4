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


def _example(**kwargs):
    """The hand-computed matrix of the first test: intersect [2, 2, 1, 0], label [3, 3, 1, 0], pred [2, 3, 2, 0]."""
    metric = IoUMetric(4, NAMES, **kwargs)
    metric.update(torch.tensor([[0, 0, 1, 1], [1, 2, 2, 3]]), torch.tensor([[0, 0, 0, 1], [1, 1, 2, 255]]))
    return metric


def test_dice_and_fscore_hand_computed():
    r = _example(iou_metrics=["mIoU", "mDice", "mFscore"]).compute()
    # Dice 2I/(P+L): bg 4/5, a 4/6, b 2/3, c 0/0 -> NaN, left out of the mean.
    assert (r["Dice.bg"], r["Dice.a"], r["Dice.b"]) == (80.0, 66.67, 66.67) and math.isnan(r["Dice.c"])
    assert r["mDice"] == round((0.8 + 2 / 3 + 2 / 3) / 3 * 100, 2) == 71.11
    # Precision I/P: bg 1, a 2/3, b 1/2; Recall I/L: bg 2/3, a 2/3, b 1; F1 equals Dice class by class.
    assert (r["Precision.bg"], r["Precision.a"], r["Precision.b"]) == (100.0, 66.67, 50.0)
    assert (r["Recall.bg"], r["Recall.a"], r["Recall.b"]) == (66.67, 66.67, 100.0)
    assert r["mPrecision"] == 72.22 and r["mRecall"] == 77.78 and r["mFscore"] == 71.11
    assert all(math.isnan(r[f"{m}.c"]) for m in ("Precision", "Recall", "Fscore"))
    assert r["mIoU"] == 55.56 and r["mAcc"] == 77.78 and r["aAcc"] == 71.43


def test_fscore_beta_weights_recall():
    r = _example(iou_metrics=["mFscore"], beta=2).compute()
    # (1 + 4) P R / (4 P + R): bg 5*(2/3)/(4+2/3) = 5/7, a 2/3, b 2.5/3.
    assert r["Fscore.bg"] == 71.43 and r["Fscore.b"] == 83.33
    assert r["mFscore"] == round((5 / 7 + 2 / 3 + 2.5 / 3) / 3 * 100, 2) == 73.81
    assert "mIoU" not in r and "mAcc" not in r and "IoU.bg" not in r


def test_nan_to_num_counts_empty_classes_in_the_means():
    r = _example(nan_to_num=0).compute()
    assert r["IoU.c"] == 0.0 and r["Acc.c"] == 0.0
    assert r["mIoU"] == round((2 / 3 + 0.5 + 0.5 + 0) / 4 * 100, 2) == 41.67
    assert r["aAcc"] == 71.43


def test_headline_follows_the_chosen_metrics():
    assert IoUMetric(4, NAMES).headline == ("aAcc", "mIoU", "mAcc")
    assert IoUMetric(4, NAMES, iou_metrics=["mIoU", "mDice"]).headline == ("aAcc", "mIoU", "mAcc", "mDice")
    assert IoUMetric(4, NAMES, iou_metrics="mFscore").headline == ("aAcc", "mFscore", "mPrecision", "mRecall")
    with pytest.raises(ValueError, match="iou_metrics must be a non-empty list of mIoU, mDice, mFscore"):
        IoUMetric(4, NAMES, iou_metrics=["mIoU", "mAP"])
    with pytest.raises(ValueError, match="beta must be a positive number"):
        IoUMetric(4, NAMES, beta=0)


def test_artifacts_table_json_and_confusion_matrix(tmp_path):
    import json

    metric = _example(iou_metrics=["mIoU", "mDice"], num_overlays=1)
    metric.process((torch.zeros(1, 3, 2, 4), torch.tensor([[[0, 0, 0, 1], [1, 1, 2, 255]]])),
                   torch.tensor([[[0, 0, 1, 1], [1, 2, 2, 3]]]))
    paths = metric.artifacts(tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in paths}
    assert names == {"per_class.md", "per_class.json", "confusion_matrix.png", "overlays"}
    table = (tmp_path / "per_class.md").read_text()
    assert "| class | IoU | Acc | Dice |" in table and "| c | NaN | NaN | NaN |" in table
    assert "| a | 50.00 | 66.67 | 66.67 |" in table
    record = json.loads((tmp_path / "per_class.json").read_text())
    assert record["per_class"]["c"] == {"IoU": None, "Acc": None, "Dice": None}
    assert record["summary"]["mIoU"] == 55.56 and list(record["summary"]) == ["aAcc", "mIoU", "mAcc", "mDice"]
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "overlays" / "sample_0.png").is_file()
