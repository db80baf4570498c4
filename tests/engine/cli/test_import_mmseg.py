"""`trainline import-mmseg`: MMSeg config trees of our own, read without running them, mapped key by key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.cli.import_mmseg import import_mmseg
from engine.cli.mmcfg_reader import read_config
from engine.cli.mmseg_mapping import map_config
from engine.config import load_params, parse_yaml
from engine.config.validate import check_params
from engine.errors import UserError
from tests.conftest import SHIPPED

SCHEDULE = """
    optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005)
    optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
    param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=80000, by_epoch=False)]
    train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000)
    val_cfg = dict(type='ValLoop')
    test_cfg = dict(type='TestLoop')
    default_hooks = dict(
        timer=dict(type='IterTimerHook'),
        logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
        param_scheduler=dict(type='ParamSchedulerHook'),
        checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=8000),
        sampler_seed=dict(type='DistSamplerSeedHook'),
        visualization=dict(type='SegVisualizationHook'))
"""
RUNTIME = """
    default_scope = 'mmseg'
    env_cfg = dict(cudnn_benchmark=True, dist_cfg=dict(backend='nccl'))
    log_level = 'INFO'
    load_from = None
    resume = False
"""
# The example as an MMSeg user would write it: shapes, UNet, AdamW + LinearLR -> PolyLR, an iteration loop.
EXAMPLE = """
    _base_ = ['../_base_/schedule.py', '../_base_/runtime.py']
    crop_size = (48, 48)
    num_classes = 4
    max_iters = 600
    warmup = max_iters // 15
    optim_wrapper = dict(
        _delete_=True, type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=0.005, betas=(0.9, 0.999), weight_decay=1e-4))
    param_scheduler = [
        dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup),
        dict(type='PolyLR', power=1.0, eta_min=0.0, begin=warmup, end=max_iters, by_epoch=False),
    ]
    train_cfg = dict(max_iters=max_iters, val_interval=max_iters // 3)
    default_hooks = dict(checkpoint=dict(interval=200, max_keep_ckpts=2), logger=dict(interval=10))
    model = dict(
        type='EncoderDecoder',
        backbone=dict(type='UNet', in_channels=3, base_channels=16, num_stages=4, norm_eval=False),
        decode_head=dict(type='FCNHead', in_channels=16, channels=16, num_classes=num_classes,
                         loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
        test_cfg=dict(mode='whole'))
    train_pipeline = [dict(type='LoadImageFromFile'), dict(type='RandomFlip', prob=0.5)]
    train_dataloader = dict(batch_size=16, num_workers=0, sampler=dict(type='InfiniteSampler', shuffle=True),
                            dataset=dict(type='ShapesDataset', data_root='data/shapes', pipeline=train_pipeline))
    val_dataloader = dict(batch_size=50, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False))
    test_dataloader = val_dataloader
    val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
    test_evaluator = val_evaluator
    randomness = dict(seed=42, deterministic=True)
"""


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write `files` (relative path -> Python source) under `root`; return the last one's path."""
    path = root
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return write_tree(tmp_path, {"_base_/schedule.py": SCHEDULE, "_base_/runtime.py": RUNTIME,
                                 "configs/unet_shapes.py": EXAMPLE})


def read(tmp_path: Path, source: str, **bases: str) -> dict:
    files = {f"{name}.py": text for name, text in bases.items()}
    return read_config(write_tree(tmp_path, {**files, "cfg.py": source}))


# --- reading -------------------------------------------------------------------------------------------------------

def test_bases_merge_dicts_replace_lists_and_delete_replaces(tmp_path: Path) -> None:
    cfg = read(tmp_path, """
        _base_ = './a.py'
        x = dict(b=dict(c=3), l=[9])
        y = dict(_delete_=True, only=1)
    """, a="x = dict(a=1, b=dict(c=1, d=2), l=[1, 2])\ny = dict(gone=1, nested=dict(k=1))\nz = 'kept'\n")
    assert cfg == {"x": {"a": 1, "b": {"c": 3, "d": 2}, "l": [9]}, "y": {"only": 1}, "z": "kept"}


def test_values_variables_tuples_arithmetic_and_base_references(tmp_path: Path) -> None:
    cfg = read(tmp_path, """
        _base_ = ['a.py']
        __hidden = 5
        iters = 80000 // 10
        lr = 1e-4 * 2
        neg = -1
        size = (512, 512)
        opt = dict(type='SGD', lr=lr, **dict(momentum=0.9))
        merged = {**opt, 'lr': 0.5}
        ref_bare = {{_base_.opt.lr}}
        ref_str = '{{ _base_.opt.lr }}'
        ref_expr = _base_.steps
        name = '{{ fileBasenameNoExtension }}'
        joined = [1] + [2]
    """, a="opt = dict(lr=0.01)\nsteps = [1, 2]\n")
    assert cfg["iters"] == 8000 and cfg["lr"] == pytest.approx(2e-4) and cfg["neg"] == -1
    assert cfg["size"] == [512, 512] and "__hidden" not in cfg and "_base_" not in cfg
    assert cfg["opt"] == {"lr": 0.0002, "type": "SGD", "momentum": 0.9}  # the base's opt.lr is overridden
    assert cfg["merged"]["lr"] == 0.5
    assert cfg["ref_bare"] == cfg["ref_str"] == 0.01 and cfg["ref_expr"] == [1, 2]
    assert cfg["name"] == "cfg" and cfg["joined"] == [1, 2]


@pytest.mark.parametrize(("source", "line", "what"), [
    ("a = 1\nimport os\n", 2, "an import"),
    ("a = 1\n\nf = lambda x: x\n", 3, "a lambda"),
    ("a = dict(b=open('x'))\n", 1, "a call of open"),
    ("import numpy as np\n", 1, "an import"),
    ("a = 1\nb = a.real\n", 2, "attribute access a.real"),
    ("a = [i for i in range(3)]\n", 1, "a comprehension"),
    ("a = 1\nif a:\n    b = 2\n", 2, "an if statement"),
    ("x, y = 1, 2\n", 1, "an assignment to something other than one plain name"),
])
def test_executable_code_is_refused_with_its_line(tmp_path: Path, source: str, line: int, what: str) -> None:
    with pytest.raises(UserError, match=rf"cfg\.py:{line}: {what}.*without running them"):
        read(tmp_path, source)


def test_reading_mistakes_name_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"cfg\.py:2: name 'lr' is not bound earlier in this file; a base's value "
                                        r"is `\{\{_base_\.lr\}\}`"):
        read(tmp_path, "_base_ = 'a.py'\nb = lr\n", a="lr = 1\n")
    with pytest.raises(UserError, match=r"cfg\.py:2: `_base_\.nope`: the base files define no such key"):
        read(tmp_path, "_base_ = 'a.py'\nb = {{_base_.nope}}\n", a="lr = 1\n")
    with pytest.raises(UserError, match=r"define the same key\(s\) \['lr'\]"):
        read(tmp_path, "_base_ = ['a.py', 'b.py']\n", a="lr = 1\n", b="lr = 2\n")
    with pytest.raises(UserError, match=r"x is a dict here but a int in the base config; set `_delete_=True`"):
        read(tmp_path, "_base_ = 'a.py'\nx = dict(a=1)\n", a="x = 1\n")
    with pytest.raises(UserError, match=r"cfg\.py:1: not valid Python"):
        read(tmp_path, "a = (\n")


# --- mapping -------------------------------------------------------------------------------------------------------

def test_the_example_maps_key_by_key(example: Path) -> None:
    mapping = map_config(read_config(example))
    assert mapping.params == {
        "seed": 42, "deterministic": True,
        "data": {"batch_size": 16, "num_workers": 0, "val_batch_size": 50,
                 "dataset": {"flip": None, "pipeline": [{"type": "RandomFlip", "prob": 0.5}]}},
        "model": {"type": "UNet", "in_channels": 3, "base_channels": 16, "num_stages": 4, "num_classes": 4},
        "evaluator": {"type": "IoUMetric"},
        "optim": {"type": "AdamW", "lr": 0.005, "betas": [0.9, 0.999], "weight_decay": 1e-4},
        "optim_wrapper": {"type": "OptimWrapper"},
        "param_scheduler": [
            {"type": "LinearLR", "start_factor": 1e-6, "by_epoch": False, "begin": 0, "end": 40},
            {"type": "PolyLR", "power": 1.0, "eta_min": 0.0, "begin": 40, "end": 600, "by_epoch": False}],
        "train_cfg": {"type": "IterBasedTrainLoop", "max_iters": 600, "val_interval": 200},
        "val_cfg": {"type": "ValLoop"}, "test_cfg": {"type": "TestLoop"},
        "default_hooks": {
            "logger": {"type": "LoggerHook", "interval": 10, "log_metric_by_epoch": False},
            "param_scheduler": {"type": "ParamSchedulerHook"},
            "checkpoint": {"type": "CheckpointHook", "by_epoch": False, "interval": 200, "max_keep_ckpts": 2},
            "sampler_seed": {"type": "DistSamplerSeedHook"},
            "visualization": {"type": "SegVisualizationHook"}},
    }
    assert dict(mapping.unmapped).keys() == {
        "model.backbone.norm_eval", "model.decode_head.in_channels", "model.decode_head.channels",
        "train_dataloader.dataset.type", "train_dataloader.dataset.data_root",
        "optimizer", "default_hooks.timer", "default_scope", "env_cfg", "log_level",
        "resume", "crop_size", "num_classes", "max_iters", "warmup", "train_pipeline"}
    assert mapping.notes == []
    lines = mapping.lines()
    assert "default_hooks.timer: not mapped (the logger hook times iterations itself (train/time, data_time))" \
        in lines
    assert all(": not mapped (" in line for line in lines)


def test_imported_example_over_the_shipped_params_passes_check(example: Path, tmp_path: Path) -> None:
    out = tmp_path / "project" / "imported.yaml"
    out.parent.mkdir()
    text, _ = import_mmseg(example, base=SHIPPED, output=out)
    out.write_text(text, encoding="utf-8")
    raw = load_params(out)
    cfg, _ = check_params(raw, data=False)
    assert cfg["optim"] == {"type": "AdamW", "lr": 0.005, "betas": [0.9, 0.999], "weight_decay": 1e-4}
    assert "num_classes" not in cfg["model"]  # offered from the base's data.classes (4 names)
    assert cfg["model"]["num_stages"] == 4 and cfg["default_hooks"]["logger"]["interval"] == 10
    assert cfg["prepare"]["type"] == "SyntheticShapes" and cfg["data"]["dataset"]["type"] == "SegDataset"
    assert (out.parent / parse_yaml(text)["_base_"]).resolve() == SHIPPED.resolve()  # relative to the output


def test_wrapper_paramwise_constructors_schedulers_hooks(tmp_path: Path) -> None:
    cfg = read(tmp_path, """
        optim_wrapper = dict(
            type='AmpOptimWrapper', dtype='bfloat16', accumulative_counts=2,
            clip_grad=dict(max_norm=1.0, norm_type=2), use_fsdp=False,
            optimizer=dict(type='AdamW', lr=6e-5, weight_decay=0.01),
            constructor='LayerDecayOptimizerConstructor',
            paramwise_cfg=dict(num_layers=4, layer_decay_rate=0.9))
        param_scheduler = [dict(type='LinearLR', start_factor=1e-6, end=40, warmup_foo=1),
                           dict(type='WarmupLR'), dict(type='PolyLR', power=1.0, begin=40, by_epoch=False)]
        custom_hooks = [dict(type='EMAHook', momentum=0.001, priority=49), dict(type='NumClassCheckHook')]
        train_cfg = dict(by_epoch=True, max_epochs=12, dynamic_intervals=[(8, 1)])
        load_from = 'https://download.openmmlab.com/x.pth'
        resume = True
    """)
    mapping = map_config(cfg)
    assert mapping.params["optim_wrapper"] == {
        "type": "AmpOptimWrapper", "dtype": "bfloat16", "accumulative_counts": 2,
        "clip_grad": {"max_norm": 1.0, "norm_type": 2},
        "paramwise_cfg": {"num_layers": 4, "decay_rate": 0.9, "decay_type": "layer_wise_vit"},
        "constructor": "LearningRateDecayOptimizerConstructor"}
    assert mapping.params["optim"] == {"type": "AdamW", "lr": 6e-5, "weight_decay": 0.01}
    assert mapping.params["param_scheduler"] == [
        {"type": "LinearLR", "start_factor": 1e-6, "end": 40}, {"type": "PolyLR", "power": 1.0, "begin": 40,
                                                                "by_epoch": False}]
    assert mapping.params["custom_hooks"] == [{"type": "EMAHook", "momentum": 0.001, "priority": 49}]
    assert mapping.params["train_cfg"] == {"type": "EpochBasedTrainLoop", "max_epochs": 12, "val_interval": 1}
    assert mapping.params["resume"] == "auto" and "load_from" not in mapping.params
    assert dict(mapping.unmapped).keys() == {
        "optim_wrapper.use_fsdp", "param_scheduler.0.warmup_foo", "param_scheduler.1", "custom_hooks.1",
        "train_cfg.dynamic_intervals", "load_from"}
    assert mapping.notes == []  # an epoch loop: MMEngine's by_epoch default and ours agree


def test_unset_by_epoch_in_an_iteration_loop_gets_a_note(tmp_path: Path) -> None:
    mapping = map_config(read(tmp_path, "param_scheduler = dict(type='PolyLR', power=0.9)\n"
                                        "train_cfg = dict(type='IterBasedTrainLoop', max_iters=100)\n"))
    assert mapping.params["param_scheduler"] == [{"type": "PolyLR", "power": 0.9}]
    assert mapping.params["train_cfg"]["val_interval"] == 1000  # MMEngine's default, written out
    assert mapping.notes == ["param_scheduler.0.by_epoch: not set; MMEngine would step PolyLR per epoch (a constant "
                             "value in an iteration loop), here it follows the loop: per iteration"]


@pytest.mark.parametrize(("model", "reason"), [
    ("dict(type='EncoderDecoder', backbone=dict(type='ResNetV1c', depth=50), decode_head=dict(type='FCNHead'))",
     "backbone 'ResNetV1c' has no counterpart here"),
    ("dict(type='EncoderDecoder', backbone=dict(type='UNet'), decode_head=dict(type='ASPPHead'))",
     "UNet with 'ASPPHead': the example's UNet has the head of an MMSeg FCNHead"),
    ("dict(type='CascadeEncoderDecoder')", "model type 'CascadeEncoderDecoder'"),
])
def test_models_without_a_counterpart_are_listed(tmp_path: Path, model: str, reason: str) -> None:
    mapping = map_config(read(tmp_path, f"model = {model}\n"))
    assert "model" not in mapping.params
    assert dict(mapping.unmapped)["model"].startswith(reason)


def test_vit_and_convnext_backbones(tmp_path: Path) -> None:
    vit = map_config(read(tmp_path, """
        model = dict(type='EncoderDecoder', backbone=dict(type='VisionTransformer', img_size=(64, 64), patch_size=8,
            embed_dims=64, num_layers=4, num_heads=4, mlp_ratio=4, drop_rate=0.1),
            decode_head=dict(type='FCNHead', num_classes=4), auxiliary_head=dict(type='FCNHead'))
    """))
    assert vit.params["model"] == {"type": "ViTSegmenter", "img_size": 64, "patch_size": 8, "embed_dims": 64,
                                   "num_layers": 4, "num_heads": 4, "mlp_ratio": 4, "num_classes": 4}
    assert dict(vit.unmapped).keys() == {"model.backbone.drop_rate", "model.auxiliary_head"}
    convnext = map_config(read(tmp_path, """
        model = dict(type='EncoderDecoder', backbone=dict(type='mmpretrain.ConvNeXt', arch='tiny'),
                     decode_head=dict(type='UPerHead', num_classes=150))
    """))
    assert convnext.params["model"] == {"type": "ConvNeXtSegmenter", "depths": [3, 3, 9, 3],
                                        "dims": [96, 192, 384, 768], "num_classes": 150}


def test_segformer_with_slide_test_cfg_aux_head_and_pretrained(tmp_path: Path) -> None:
    mapping = map_config(read(tmp_path, """
        norm_cfg = dict(type='SyncBN', requires_grad=True)
        model = dict(type='EncoderDecoder', pretrained='pretrain/mit_b0.pth',
            backbone=dict(type='MixVisionTransformer', in_channels=3, embed_dims=32, num_stages=4,
                num_layers=[2, 2, 2, 2], num_heads=[1, 2, 5, 8], patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1],
                out_indices=(0, 1, 2, 3), mlp_ratio=4, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
                drop_path_rate=0.1),
            decode_head=dict(type='SegformerHead', in_channels=[32, 64, 160, 256], in_index=[0, 1, 2, 3],
                channels=256, dropout_ratio=0.1, num_classes=150, norm_cfg=norm_cfg, align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
            auxiliary_head=dict(type='FCNHead', in_channels=160, in_index=2, channels=64, num_convs=1,
                concat_input=False, dropout_ratio=0.1, num_classes=150, norm_cfg=norm_cfg, align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
            test_cfg=dict(mode='slide', crop_size=(1024, 1024), stride=(768, 768)))
    """))
    assert mapping.params["model"] == {
        "type": "SegFormer", "in_channels": 3, "embed_dims": 32, "num_stages": 4, "num_layers": [2, 2, 2, 2],
        "num_heads": [1, 2, 5, 8], "patch_sizes": [7, 3, 3, 3], "sr_ratios": [8, 4, 2, 1], "mlp_ratio": 4,
        "qkv_bias": True, "drop_rate": 0.0, "attn_drop_rate": 0.0, "drop_path_rate": 0.1, "channels": 256,
        "dropout_ratio": 0.1, "num_classes": 150,
        "auxiliary_head": {"in_index": 2, "channels": 64, "num_convs": 1, "concat_input": False,
                           "dropout_ratio": 0.1, "loss_weight": 0.4},
        "test_cfg": {"mode": "slide", "crop_size": [1024, 1024], "stride": [768, 768]}}
    unmapped = dict(mapping.unmapped)
    assert "model.pretrained" in unmapped and ".safetensors" in unmapped["model.pretrained"]
    assert not any(k.startswith("model.test_cfg") or k.startswith("model.auxiliary_head") for k in unmapped)
    local = map_config(read(tmp_path, """
        model = dict(type='EncoderDecoder', backbone=dict(type='MixVisionTransformer',
            init_cfg=dict(type='Pretrained', checkpoint='pretrain/mit_b0.safetensors')),
            decode_head=dict(type='SegformerHead', num_classes=4), test_cfg=dict(mode='whole'))
    """))
    assert local.params["model"] == {"type": "SegFormer", "num_classes": 4,
                                     "init_cfg": {"type": "Pretrained", "checkpoint": "pretrain/mit_b0.safetensors"}}
    assert dict(local.unmapped) == {}


# --- the command ---------------------------------------------------------------------------------------------------

def test_cli_writes_once_lists_unmapped_on_stderr_and_refuses_overwrite(example: Path, tmp_path: Path) -> None:
    out = tmp_path / "imported.yaml"
    result = CliRunner().invoke(main, ["import-mmseg", str(example), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "crop_size: not mapped (" in result.stderr and f"wrote {out}" in result.stderr
    assert parse_yaml(out.read_text())["optim"]["type"] == "AdamW"
    again = CliRunner().invoke(main, ["import-mmseg", str(example), "-o", str(out)])
    assert again.exit_code == 2 and f"error: {out}: exists; pass --force to replace it" in again.stderr
    assert CliRunner().invoke(main, ["import-mmseg", str(example), "-o", str(out), "--force"]).exit_code == 0
    to_stdout = CliRunner().invoke(main, ["import-mmseg", str(example)])
    assert to_stdout.exit_code == 0 and parse_yaml(to_stdout.stdout)["train_cfg"]["max_iters"] == 600


def test_cli_refuses_code_and_self_including_output(tmp_path: Path) -> None:
    bad = write_tree(tmp_path, {"bad.py": "import os\nx = 1\n"})
    result = CliRunner().invoke(main, ["import-mmseg", str(bad)])
    assert result.exit_code == 2 and f"error: {bad}:1: an import" in result.stderr
    base = tmp_path / "params.yaml"
    base.write_text("seed: 1\n")
    cfg = write_tree(tmp_path, {"ok.py": "x = 1\n"})
    same = CliRunner().invoke(main, ["import-mmseg", str(cfg), "--base", str(base), "-o", str(base), "--force"])
    assert same.exit_code == 2 and "is also --base" in same.stderr


def test_loader_settings_have_one_home(tmp_path: Path) -> None:
    mapping = map_config(read(tmp_path, """
        train_dataloader = dict(batch_size=8, num_workers=2, persistent_workers=True,
                                sampler=dict(type='DefaultSampler', shuffle=False))
        val_dataloader = dict(batch_size=1, num_workers=4, sampler=dict(type='DefaultSampler', shuffle=False))
        test_dataloader = dict(batch_size=2, num_workers=2)
    """))
    assert mapping.params["data"] == {"batch_size": 8, "num_workers": 2, "val_batch_size": 1}
    unmapped = dict(mapping.unmapped)
    assert unmapped.keys() == {"train_dataloader.persistent_workers", "train_dataloader.sampler",
                               "val_dataloader.num_workers", "test_dataloader.batch_size"}
    assert unmapped["val_dataloader.num_workers"] == "4: one data.num_workers serves every split (= 2, from " \
                                                     "train_dataloader)"


# --- pipelines -----------------------------------------------------------------------------------------------------

ADE_PIPELINES = """
    crop_size = (512, 512)
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='RandomRotate', prob=0.5, degree=10),
        dict(type='PackSegInputs')]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(2048, 512), keep_ratio=True),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs')]
    train_dataloader = dict(batch_size=4, dataset=dict(type='ADE20KDataset', pipeline=train_pipeline))
    val_dataloader = dict(batch_size=1, dataset=dict(type='ADE20KDataset', pipeline=test_pipeline))
    test_dataloader = val_dataloader
"""


def test_pipelines_map_step_by_step(tmp_path: Path) -> None:
    mapping = map_config(read(tmp_path, ADE_PIPELINES))
    assert mapping.params["data"] == {"batch_size": 4, "val_batch_size": 1, "dataset": {
        "flip": None,
        "pipeline": [
            {"type": "RandomResize", "scale": [2048, 512], "ratio_range": [0.5, 2.0], "keep_ratio": True},
            {"type": "RandomCrop", "crop_size": [512, 512], "cat_max_ratio": 0.75},
            {"type": "RandomFlip", "prob": 0.5}, {"type": "PhotoMetricDistortion"}],
        "test_pipeline": [{"type": "Resize", "scale": [2048, 512], "keep_ratio": True}]}}
    unmapped = dict(mapping.unmapped)
    assert {k for k in unmapped if ".pipeline" in k} == {
        "train_dataloader.dataset.pipeline.1.reduce_zero_label", "train_dataloader.dataset.pipeline.6",
        "val_dataloader.dataset.pipeline.2.reduce_zero_label"}  # test shares val's: not listed twice
    assert "prepare.reduce_zero_label" in unmapped["train_dataloader.dataset.pipeline.1.reduce_zero_label"]
    assert unmapped["train_dataloader.dataset.pipeline.6"].startswith("RandomRotate: no such transform here")


def test_mmseg_0x_pipelines_and_a_separate_test_pipeline(tmp_path: Path) -> None:
    mapping = map_config(read(tmp_path, """
        norm = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
        train_dataloader = dict(dataset=dict(type='X', pipeline=[
            dict(type='Resize', img_scale=(2048, 512), ratio_range=(0.5, 2.0)),
            dict(type='Normalize', **norm),
            dict(type='Pad', size=(512, 512), pad_val=0, seg_pad_val=255),
            dict(type='RandomFlip', prob=[0.3, 0.3], direction=['horizontal', 'vertical']),
            dict(type='DefaultFormatBundle'), dict(type='Collect', keys=['img', 'gt_semantic_seg'])]))
        val_dataloader = dict(dataset=dict(type='X', pipeline=[
            dict(type='Resize', img_scale=(2048, 512), keep_ratio=True), dict(type='RandomFlip', prob=1.0)]))
        test_dataloader = dict(dataset=dict(type='X', pipeline=[dict(type='Resize', scale=(1024, 256))]))
    """))
    dataset = mapping.params["data"]["dataset"]
    assert dataset["pipeline"] == [
        {"type": "RandomResize", "ratio_range": [0.5, 2.0], "scale": [2048, 512]},
        {"type": "Normalize", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]},
        {"type": "Pad", "size": [512, 512], "pad_val": 0, "seg_pad_val": 255}]
    assert dataset["test_pipeline"] == [{"type": "Resize", "keep_ratio": True, "scale": [2048, 512]}]
    unmapped = dict(mapping.unmapped)
    assert "RGB order" in unmapped["train_dataloader.dataset.pipeline.1.to_rgb"]
    assert "not lists" in unmapped["train_dataloader.dataset.pipeline.3"]
    assert "implicit" in unmapped["train_dataloader.dataset.pipeline.5.keys"]
    assert "changes the image only" in unmapped["val_dataloader.dataset.pipeline.1"]
    assert "share data.dataset.test_pipeline" in unmapped["test_dataloader.dataset.pipeline"]


def test_imported_pipelines_over_the_shipped_params_pass_check(tmp_path: Path) -> None:
    config = write_tree(tmp_path, {"cfg.py": ADE_PIPELINES})
    out = tmp_path / "imported.yaml"
    text, _ = import_mmseg(config, base=SHIPPED, output=out)
    out.write_text(text, encoding="utf-8")
    cfg, _ = check_params(load_params(out), data=False)
    assert cfg["data"]["dataset"]["type"] == "SegDataset" and cfg["data"]["dataset"]["flip"] is None
    assert [s["type"] for s in cfg["data"]["dataset"]["pipeline"]] == [
        "RandomResize", "RandomCrop", "RandomFlip", "PhotoMetricDistortion"]


def test_the_mapped_transform_arguments_are_the_transforms_signatures() -> None:
    import inspect

    from engine.cli.mmseg_pipeline import TEST_TRANSFORMS, TRANSFORM_ARGS
    from engine.seg import transforms_pipeline

    assert TRANSFORM_ARGS.keys() == transforms_pipeline.TRANSFORMS.keys()
    assert TEST_TRANSFORMS == transforms_pipeline.TEST_TRANSFORMS
    for name, cls in transforms_pipeline.TRANSFORMS.items():
        assert TRANSFORM_ARGS[name] == tuple(inspect.signature(cls).parameters), name
