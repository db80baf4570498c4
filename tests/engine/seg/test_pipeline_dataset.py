"""SegDataset with pipelines on a folder dataset of varied image sizes: fixed-size train items, reproducible draws
whatever the loader workers, the test pipeline's image-only resize, config errors, batching errors, and a short
training through the engine."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from engine.config import load_params
from engine.config.validate import check_params
from engine.data import BatchSizeError, StackingCollate
from engine.errors import ConfigError
from engine.seg.dataset import SegDataset
from engine.seg.folder import prepare_folder
from tests.engine.fixtures import REPO_ROOT, make_cfg, make_runner, weights_of
from tests.engine.seg import folder_fixtures as ff

CLASSES = ["bg", "a", "b"]
PIPELINE = [{"type": "RandomResize", "scale": [32, 16], "ratio_range": [0.5, 2.0], "keep_ratio": True},
            {"type": "RandomCrop", "crop_size": [12, 12], "cat_max_ratio": 0.75},
            {"type": "RandomFlip", "prob": 0.5}, {"type": "PhotoMetricDistortion"},
            {"type": "Pad", "size": [12, 12]}]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("varied")
    ff.generic(base / "raw", names=[f"t{i}" for i in range(8)], subdir="train", img_suffix=".png")
    ff.generic(base / "raw", names=["v0", "v1", "v2"], subdir="val", seed=1, img_suffix=".png")
    prepare_folder(base / "data", source=str(base / "raw"), img_suffix=".png", classes=CLASSES)
    return base / "data"


def items(ds: SegDataset) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [ds[i] for i in range(len(ds))]


def test_train_items_have_the_crop_size_and_depend_on_seed_epoch_and_index_only(root):
    ds = SegDataset(root, "train", pipeline=PIPELINE, classes=CLASSES, seed=3)
    first = items(ds)
    assert {tuple(image.shape) for image, _ in first} == {(3, 12, 12)}
    assert {tuple(mask.shape) for _, mask in first} == {(12, 12)}
    again = items(SegDataset(root, "train", pipeline=PIPELINE, classes=CLASSES, seed=3))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    # Two loader workers read the items in another interleaving: the same tensors come out.
    loaded = [(img[0], mask[0]) for img, mask in DataLoader(ds, batch_size=1, num_workers=2)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, loaded, strict=True))
    ds.set_epoch(1)
    assert sum(torch.equal(a[0], b[0]) for a, b in zip(first, items(ds), strict=True)) < 2
    ds.set_epoch(0)
    assert torch.equal(items(ds)[5][0], first[5][0])


def test_the_test_pipeline_resizes_the_image_only(root):
    plain = SegDataset(root, "val", classes=CLASSES)
    ds = SegDataset(root, "val", test_pipeline=[{"type": "Resize", "scale": [32, 16]}], classes=CLASSES,
                    pipeline=PIPELINE)
    for (image, mask), (_, ref_mask) in zip(items(ds), items(plain), strict=True):
        h, w = ref_mask.shape
        factor = min(32 / max(h, w), 16 / min(h, w))
        assert image.shape == (3, int(h * factor + 0.5), int(w * factor + 0.5))
        assert torch.equal(mask, ref_mask)
    assert not SegDataset(root, "val", pipeline=PIPELINE, classes=CLASSES).augment  # val: no pipeline, plain
    assert torch.equal(SegDataset(root, "val", pipeline=PIPELINE, classes=CLASSES)[0][0], plain[0][0])


def test_without_pipelines_the_flip_argument_works_as_before(root):
    default, explicit = SegDataset(root, "train", classes=CLASSES), SegDataset(root, "train", flip=True,
                                                                              classes=CLASSES)
    assert default.augment and explicit.augment and default.pipeline is None
    assert all(torch.equal(a[0], b[0]) for a, b in zip(items(default), items(explicit), strict=True))
    # A pipeline of one RandomFlip is the same transform: what an imported MMSeg pipeline of it trains on.
    flipped = SegDataset(root, "train", pipeline=[{"type": "RandomFlip", "prob": 0.5}], classes=CLASSES)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
               for a, b in zip(items(default), items(flipped), strict=True))
    with pytest.raises(ConfigError, match=r"^data\.dataset\.flip: not used with data\.dataset\.pipeline"):
        SegDataset(root, "train", flip=True, pipeline=PIPELINE)


def test_check_reports_every_pipeline_problem_before_the_data_exists(tmp_path):
    raw = load_params(REPO_ROOT / "params.yaml")
    raw["data"]["root"] = str(tmp_path / "not-prepared-yet")
    raw["data"]["dataset"] = {"type": "SegDataset", "flip": True, "std": [1, 0, 1],
                              "pipeline": [{"type": "RandomCrop", "crop_size": [48, 48], "cat_max_ratio": 2},
                                           {"type": "RandomFlp"}],
                              "test_pipeline": [{"type": "Pad", "size_divisor": 32}]}
    with pytest.raises(ConfigError) as info:
        check_params(raw)
    keys = [p.split(":")[0] for p in info.value.problems]
    assert keys == ["data.dataset.flip", "data.dataset.std", "data.dataset.pipeline.0.cat_max_ratio",
                    "data.dataset.pipeline.1.type", "data.dataset.test_pipeline.0.type"], info.value.problems
    assert info.value.problems[1] == "data.dataset.std: must be three positive numbers, got [1, 0, 1]"
    raw["data"]["dataset"] = {"type": "SegDataset", "pipeline": PIPELINE,
                              "test_pipeline": [{"type": "Resize", "scale": [32, 16]}]}
    check_params(raw)


def test_items_of_different_sizes_in_one_batch_name_the_batch_size_key(root):
    ds = SegDataset(root, "val", classes=CLASSES)
    for workers in (0, 1):
        loader = DataLoader(ds, batch_size=3, num_workers=workers, collate_fn=StackingCollate("data.val_batch_size"))
        with pytest.raises(BatchSizeError) as info:
            next(iter(loader))
        message = str(info.value)
        assert message.startswith("data.val_batch_size: the items of one batch have different sizes (3x10x12 and "
                                  "3x12x16)") and "set data.val_batch_size: 1" in message, message
        assert "Traceback" not in message


def test_training_through_the_engine_with_a_pipeline(root, tmp_path):
    cfg = make_cfg({
        "prepare": {"_delete_": True, "type": "SegFolder", "source": str(root.parent / "raw"), "img_suffix": ".png"},
        "data": {"root": str(root), "classes": CLASSES, "batch_size": 4, "val_batch_size": 1,
                 "dataset": {"_delete_": True, "type": "SegDataset", "pipeline": PIPELINE}},
    }, max_iters=4)
    runner = make_runner(cfg, tmp_path / "work")
    before = weights_of(runner)
    runner.train()
    after = weights_of(runner)
    assert runner.iter == 4 and any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in after.values())


def test_the_documented_example_pipeline_passes_check():
    from engine.config import merge, parse_yaml

    text = (REPO_ROOT / "docs" / "datasets.md").read_text().split("## Pipelines", 1)[1]
    example = parse_yaml(text.split("```yaml", 1)[1].split("```", 1)[0])
    example["data"]["dataset"]["flip"] = None  # the shipped params set flip: true
    cfg, _ = check_params(merge(example, load_params(REPO_ROOT / "params.yaml")), data=False)
    assert [s["type"] for s in cfg["data"]["dataset"]["pipeline"]][-1] == "Pad"
