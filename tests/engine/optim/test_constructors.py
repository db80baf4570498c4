"""MMEngine DefaultOptimWrapperConstructor semantics of build_param_groups, and paramwise_problems messages."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from engine.optim.constructors import CONSTRUCTORS, build_param_groups, paramwise_problems
from engine.seg.models.vit import ViTSegmenter

LR, WD = 6e-5, 0.01
OPTIM = {"lr": LR, "weight_decay": WD}
SEED_KEYS = {"pos_embed": {"decay_mult": 0.0}, "cls_token": {"decay_mult": 0.0}, "norm": {"decay_mult": 0.0}}


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(2, 2))  # top level, 2-D
        self.scale = nn.Parameter(torch.ones(3))  # top level, 1-D
        self.conv = nn.Conv2d(3, 4, 3)
        self.dwconv = nn.Conv2d(4, 4, 3, groups=4)
        self.bn = nn.BatchNorm2d(4)
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm(4)
        self.rms = nn.RMSNorm(4)
        self.sub = nn.Module()
        self.sub.weight = nn.Parameter(torch.ones(2, 2))
        self.sub.linear = nn.Linear(4, 2)


def mmengine_reference(model: nn.Module, optim: dict, cfg: dict) -> dict[str, tuple[float, float | None]]:
    """One group per parameter, transcribed rule by rule from MMEngine's add_params: name -> (lr, weight_decay)."""
    base_lr, base_wd = optim["lr"], optim.get("weight_decay")
    keys = sorted(sorted(cfg.get("custom_keys", {})), key=len, reverse=True)
    norms = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm)
    out: dict[str, tuple[float, float | None]] = {}

    def add(module: nn.Module, prefix: str) -> None:
        is_norm = isinstance(module, norms)
        is_dw = isinstance(module, nn.Conv2d) and module.in_channels == module.groups
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            group = {}
            key = next((k for k in keys if k in f"{prefix}.{name}"), None)
            if key is not None:
                entry = cfg["custom_keys"][key]
                group["lr"] = base_lr * entry.get("lr_mult", 1.0)
                if base_wd is not None:
                    group["weight_decay"] = base_wd * entry.get("decay_mult", 1.0)
                group.update(entry)
            else:
                if name == "bias" and not is_norm and cfg.get("bias_lr_mult") is not None:
                    group["lr"] = base_lr * cfg["bias_lr_mult"]
                if base_wd is not None:
                    if is_norm and cfg.get("norm_decay_mult") is not None:
                        group["weight_decay"] = base_wd * cfg["norm_decay_mult"]
                    elif name == "bias" and cfg.get("bias_decay_mult") is not None:
                        group["weight_decay"] = base_wd * cfg["bias_decay_mult"]
                    elif is_dw and cfg.get("dwconv_decay_mult") is not None:
                        group["weight_decay"] = base_wd * cfg["dwconv_decay_mult"]
                    elif p.ndim == 1 and cfg.get("flat_decay_mult") is not None:
                        group["weight_decay"] = base_wd * cfg["flat_decay_mult"]
            out[f"{prefix}.{name}" if prefix else name] = (group.get("lr", base_lr), group.get("weight_decay", base_wd))
        for child_name, child in module.named_children():
            add(child, f"{prefix}.{child_name}" if prefix else child_name)

    add(model, "")
    return out


def per_param(groups: list[dict]) -> dict[str, tuple[float, float | None]]:
    """name -> (lr, weight_decay) as a torch optimizer built from the groups sees them."""
    opt = torch.optim.SGD(groups, lr=LR, weight_decay=WD)
    return {n: (g["lr"], g["weight_decay"]) for g in opt.param_groups for n in g["param_names"]}


def rows(model: nn.Module, cfg: dict, optim: dict = OPTIM) -> dict:
    _, rules = build_param_groups(model, optim, cfg)
    return {r.name: r for r in rules}


def test_seed_custom_keys_on_vit():
    model = ViTSegmenter(3, num_layers=2, embed_dims=16, num_heads=2)
    groups, rules = build_param_groups(model, {**OPTIM, "betas": (0.9, 0.999)}, {"custom_keys": SEED_KEYS})
    got = {r.name: (r.lr, r.weight_decay, r.rule) for r in rules}
    assert got["backbone.pos_embed"] == (LR, 0.0, "custom_keys['pos_embed']")
    assert got["backbone.cls_token"] == (LR, 0.0, "custom_keys['cls_token']")
    assert got["backbone.norm.weight"] == (LR, 0.0, "custom_keys['norm']")
    assert got["backbone.norm.bias"] == (LR, 0.0, "custom_keys['norm']")
    # 'ln1' does not contain 'norm': the block norms keep the base weight decay.
    assert got["backbone.layers.0.ln1.weight"] == (LR, WD, "default")
    assert got["backbone.layers.1.ln2.bias"] == (LR, WD, "default")
    assert got["decode_head.bn.weight"] == (LR, WD, "default")
    # Identical settings share one group; decay_mult is copied into the group as MMEngine does.
    assert len(groups) == 2
    assert groups[0]["decay_mult"] == 0.0
    assert groups[0]["param_names"] == ["backbone.cls_token", "backbone.pos_embed", "backbone.norm.weight",
                                        "backbone.norm.bias"]
    opt = torch.optim.AdamW(groups, lr=LR, weight_decay=WD)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, WD]
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_longest_key_first_then_alphabetical():
    r = rows(Toy(), {"custom_keys": {"conv": {"lr_mult": 2.0}, "dwconv": {"lr_mult": 3.0}, "sub": {"lr_mult": 4.0},
                                     "lin": {"lr_mult": 5.0}}})
    assert r["dwconv.weight"].lr == pytest.approx(3 * LR)  # 'dwconv' is longer than 'conv'
    assert r["conv.weight"].lr == pytest.approx(2 * LR)
    assert r["sub.linear.weight"].lr == pytest.approx(5 * LR)  # 'lin' and 'sub' tie on length: 'lin' sorts first
    assert r["sub.weight"].lr == pytest.approx(4 * LR)


def test_leading_dot_quirk_for_top_level_params():
    # Top-level parameters are matched as ".scale"; nested prefixes get no leading dot.
    r = rows(Toy(), {"custom_keys": {".scale": {"lr_mult": 0.5}, ".sub": {"lr_mult": 7.0}}})
    assert r["scale"].lr == pytest.approx(0.5 * LR)
    assert r["scale"].rule == "custom_keys['.scale']"
    assert r["sub.weight"].lr == LR and r["sub.weight"].rule == "default"
    # ".weight" therefore matches the top-level weight as well as every nested one.
    r = rows(Toy(), {"custom_keys": {".weight": {"lr_mult": 0.5}}})
    assert r["weight"].lr == pytest.approx(0.5 * LR)
    assert r["sub.weight"].lr == pytest.approx(0.5 * LR)
    assert r["conv.bias"].lr == LR


def test_custom_key_skips_other_rules_and_copies_optimizer_args():
    cfg = {"custom_keys": {"conv": {"lr_mult": 2.0, "momentum": 0.5}}, "bias_lr_mult": 10.0, "bias_decay_mult": 0.0}
    groups, rules = build_param_groups(Toy(), OPTIM, cfg)
    r = {x.name: x for x in rules}
    assert (r["conv.bias"].lr, r["conv.bias"].weight_decay) == (pytest.approx(2 * LR), WD)
    assert r["sub.linear.bias"].lr == pytest.approx(10 * LR) and r["sub.linear.bias"].weight_decay == 0.0
    conv_group = next(g for g in groups if "conv.weight" in g["param_names"])
    assert conv_group["momentum"] == 0.5 and conv_group["lr_mult"] == 2.0
    opt = torch.optim.SGD(groups, lr=LR, momentum=0.9, weight_decay=WD)
    assert opt.param_groups[groups.index(conv_group)]["momentum"] == 0.5


def test_bias_lr_mult_skips_norm_layers():
    r = rows(Toy(), {"bias_lr_mult": 2.0})
    assert r["conv.bias"].lr == pytest.approx(2 * LR) and r["conv.bias"].rule == "bias_lr_mult"
    assert r["sub.linear.bias"].lr == pytest.approx(2 * LR)
    for name in ("bn.bias", "gn.bias", "ln.bias", "conv.weight"):
        assert r[name].lr == LR


def test_weight_decay_chain():
    cfg = {"norm_decay_mult": 0.0, "bias_decay_mult": 0.5, "dwconv_decay_mult": 0.25, "flat_decay_mult": 0.125}
    r = rows(Toy(), cfg)
    for name in ("bn.weight", "bn.bias", "gn.weight", "ln.bias", "rms.weight"):
        assert (r[name].weight_decay, r[name].rule) == (0.0, "norm_decay_mult"), name
    assert r["conv.bias"].weight_decay == pytest.approx(0.5 * WD)
    assert r["dwconv.bias"].weight_decay == pytest.approx(0.5 * WD)  # bias comes before dwconv in the chain
    assert (r["dwconv.weight"].weight_decay, r["dwconv.weight"].rule) == (pytest.approx(0.25 * WD), "dwconv_decay_mult")
    assert (r["scale"].weight_decay, r["scale"].rule) == (pytest.approx(0.125 * WD), "flat_decay_mult")
    assert (r["conv.weight"].weight_decay, r["conv.weight"].rule) == (WD, "default")


def test_unset_mult_falls_through_to_next_rule():
    r = rows(Toy(), {"bias_decay_mult": 0.0, "flat_decay_mult": 0.5, "bias_lr_mult": 3.0})
    assert r["bn.bias"].weight_decay == 0.0 and r["bn.bias"].lr == LR  # no norm_decay_mult -> bias rule
    assert r["bn.weight"].weight_decay == pytest.approx(0.5 * WD)  # -> flat rule
    assert r["conv.bias"].rule == "bias_lr_mult+bias_decay_mult"


def test_no_base_weight_decay_leaves_weight_decay_alone():
    groups, rules = build_param_groups(Toy(), {"lr": LR}, {"bias_lr_mult": 2.0, "custom_keys": {"bn": {"lr_mult": 0}}})
    assert all("weight_decay" not in g for g in groups)
    assert all(r.weight_decay is None for r in rules)
    # MMEngine does not check flat_decay_mult (it silently does nothing without a base weight decay); we report it.
    p = paramwise_problems({"flat_decay_mult": 0.0}, {"lr": LR}, None)
    assert p[0].startswith("optim_wrapper.paramwise_cfg.flat_decay_mult: 0.0 multiplies optim.weight_decay")


def test_one_channel_conv_counts_as_depthwise():
    model = nn.Sequential(nn.Conv2d(1, 4, 3))  # in_channels == groups == 1: MMEngine's test says depth-wise
    assert rows(model, {"dwconv_decay_mult": 0.0})["0.weight"].weight_decay == 0.0


def test_frozen_params_left_out_only_with_paramwise_cfg():
    model = Toy()
    model.conv.weight.requires_grad_(False)
    groups, rules = build_param_groups(model, OPTIM, {"bias_lr_mult": 2.0})
    assert all("conv.weight" not in g["param_names"] for g in groups)
    assert next(r for r in rules if r.name == "conv.weight").rule.startswith("frozen")
    groups, rules = build_param_groups(model, OPTIM, None)
    assert len(groups) == 1 and "conv.weight" in groups[0]["param_names"]
    assert len(groups[0]["params"]) == len(list(model.parameters())) == len(rules)
    assert {(r.lr, r.weight_decay, r.rule) for r in rules} == {(LR, WD, "default")}


def test_duplicates_need_bypass_duplicate():
    shared = nn.Linear(2, 2)
    model = nn.Module()
    model.a, model.b = nn.Sequential(shared), nn.Sequential(shared)
    with pytest.raises(ValueError, match="b.0.weight.*same tensor as 'a.0.weight'.*bypass_duplicate: true"):
        build_param_groups(model, OPTIM, {"bias_lr_mult": 2.0})
    groups, rules = build_param_groups(model, OPTIM, {"bias_lr_mult": 2.0, "bypass_duplicate": True})
    assert sum(len(g["params"]) for g in groups) == 2
    dup = next(r for r in rules if r.name == "b.0.bias")
    assert dup.rule.startswith("bypass_duplicate") and dup.lr == pytest.approx(2 * LR)
    torch.optim.SGD(groups, lr=LR)


@pytest.mark.parametrize(
    "cfg",
    [
        {"custom_keys": SEED_KEYS},
        {"custom_keys": {"conv": {"lr_mult": 0.1, "decay_mult": 2.0}, ".weight": {"lr_mult": 3.0}},
         "bias_lr_mult": 2.0},
        {"bias_lr_mult": 2.0, "bias_decay_mult": 0.0, "norm_decay_mult": 0.0, "dwconv_decay_mult": 0.5,
         "flat_decay_mult": 0.0},
        {"custom_keys": {"norm": {"decay_mult": 0.0}}, "flat_decay_mult": 0.3},
    ],
)
def test_merged_groups_match_one_group_per_param(cfg):
    for model in (Toy(), ViTSegmenter(3, num_layers=1, embed_dims=8, num_heads=2)):
        groups, rules = build_param_groups(model, OPTIM, cfg)
        expected = mmengine_reference(model, OPTIM, cfg)
        assert per_param(groups) == expected  # same arithmetic, so exactly equal
        assert {r.name: (r.lr, r.weight_decay) for r in rules} == expected
        assert list(expected) == [r.name for r in rules]  # module-walk order
        assert len(groups) < len(expected)


def test_group_order_is_first_appearance():
    groups, _ = build_param_groups(Toy(), OPTIM, {"flat_decay_mult": 0.0})
    assert groups[0]["param_names"][0] == "weight" and groups[1]["param_names"][0] == "scale"


def test_build_raises_all_problems_at_once():
    with pytest.raises(ValueError, match=r"(?s)norm_decay_mul:.*bias_lr_mult: must be a number"):
        build_param_groups(Toy(), OPTIM, {"norm_decay_mul": 0.0, "bias_lr_mult": "x"})


def test_problems_ok_cases():
    assert paramwise_problems(None, OPTIM, None) == []
    assert paramwise_problems({}, {}, None) == []
    assert paramwise_problems({"custom_keys": SEED_KEYS, "bypass_duplicate": True}, OPTIM, CONSTRUCTORS[0]) == []


def test_problem_messages():
    p = paramwise_problems({"norm_decay": 0.0}, OPTIM, None)
    assert p == [
        "optim_wrapper.paramwise_cfg.norm_decay: unknown key (value 0.0); allowed: custom_keys, bias_lr_mult, "
        "norm_decay_mult, bias_decay_mult, dwconv_decay_mult, flat_decay_mult, bypass_duplicate "
        "(did you mean 'norm_decay_mult'?)"
    ]
    cfg = {"custom_keys": {"pos_embed": {"decay_mult": 0.0}}, "norm_decay_mult": 0.0}
    p = paramwise_problems(cfg, {"lr": LR}, None)
    assert p == [
        "optim_wrapper.paramwise_cfg.custom_keys.pos_embed.decay_mult: 0.0 multiplies optim.weight_decay, which is "
        "not set; set optim.weight_decay or remove optim_wrapper.paramwise_cfg.custom_keys.pos_embed.decay_mult",
        "optim_wrapper.paramwise_cfg.norm_decay_mult: 0.0 multiplies optim.weight_decay, which is not set; "
        "set optim.weight_decay or remove optim_wrapper.paramwise_cfg.norm_decay_mult",
    ]
    p = paramwise_problems({"bias_lr_mult": True, "bypass_duplicate": "yes", "custom_keys": {".w": {"lr_mul": 2}}},
                           OPTIM, None)
    assert "optim_wrapper.paramwise_cfg.bias_lr_mult: must be a number >= 0, got True" in p
    assert "optim_wrapper.paramwise_cfg.bypass_duplicate: must be true or false, got 'yes'" in p
    assert any(m.startswith("optim_wrapper.paramwise_cfg.custom_keys['.w'].lr_mul: unknown option")
               and "did you mean 'lr_mult'" in m for m in p)
    p = paramwise_problems({"custom_keys": ["norm"]}, OPTIM, None)
    assert p[0].startswith("optim_wrapper.paramwise_cfg.custom_keys: must map a name substring")
    p = paramwise_problems({"bias_lr_mult": 2.0}, {}, None)
    assert p == [
        "optim.lr: required when optim_wrapper.paramwise_cfg is set: the base learning rate the multipliers scale"
    ]


def test_problem_messages_constructor():
    p = paramwise_problems(None, OPTIM, "LearningRateDecayConstructor")
    assert p == [
        "optim_wrapper.constructor: unknown constructor 'LearningRateDecayConstructor'; allowed: "
        "DefaultOptimWrapperConstructor, LearningRateDecayOptimizerConstructor "
        "(did you mean 'LearningRateDecayOptimizerConstructor'?)"
    ]
    p = paramwise_problems({"decay_rate": 0.9}, OPTIM, None)
    assert "set optim_wrapper.constructor: LearningRateDecayOptimizerConstructor" in p[0]
    p = paramwise_problems("x", OPTIM, None, path="cfg.paramwise_cfg")
    assert p == ["cfg.paramwise_cfg: must be a mapping of param-wise options, got 'x'"]


def _imported_modules(module: str) -> set[str]:
    """Every module a source file imports, function-level imports included (the lazy imports a cycle hides in)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(open(spec.origin, encoding="utf-8").read())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_rule_modules_share_a_base_and_import_neither_each_other_nor_the_dispatcher():
    base = "engine.optim.param_groups_base"
    rules = ("engine.optim.default_constructor", "engine.optim.layer_decay")
    dispatcher = "engine.optim.constructors"
    assert not _imported_modules(base) & {*rules, dispatcher}
    for module in rules:
        imported = _imported_modules(module)
        assert base in imported
        assert not imported & ({*rules, dispatcher} - {module}), module
    assert set(rules) <= _imported_modules(dispatcher)
