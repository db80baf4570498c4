"""Map a read MMSeg/MMEngine config (a plain dict) to params.yaml sections, listing each key that does not map.

Every key of the MMSeg config ends up in exactly one place: a params.yaml value, or an `Unmapped` line with the
reason. Where MMEngine's default differs from ours and the config relies on it (`train_cfg.val_interval`, the
checkpoint hook's `interval`), MMEngine's value is written out, so the imported file means what the config meant.
Where a config leaves `by_epoch` out of an iteration-based schedule, MMEngine would step it per epoch (its known
trap: a constant LR); we keep our default (the loop's kind) and say so in a note.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from engine.cli.mmseg_models import map_model, short_type
from engine.cli.mmseg_pipeline import map_dataset

# torch.optim's optimizers (MMEngine registers them under these names); kept as names so mapping imports no torch.
TORCH_OPTIMIZERS = ("SGD", "Adam", "AdamW", "Adamax", "Adagrad", "Adadelta", "RMSprop", "Rprop", "ASGD", "NAdam",
                    "RAdam", "LBFGS", "SparseAdam", "Adafactor")
_WRAPPERS = ("OptimWrapper", "AmpOptimWrapper")
_WRAPPER_KEYS = {"OptimWrapper": ("accumulative_counts", "clip_grad"),
                 "AmpOptimWrapper": ("accumulative_counts", "clip_grad", "loss_scale", "dtype")}
_DEFAULT_PARAMWISE = ("custom_keys", "bias_lr_mult", "bias_decay_mult", "norm_decay_mult", "dwconv_decay_mult",
                      "flat_decay_mult", "bypass_duplicate")
_LAYER_DECAY = "LearningRateDecayOptimizerConstructor"
_LOOP_KEYS = {"IterBasedTrainLoop": ("max_iters", "val_interval", "val_begin"),
              "EpochBasedTrainLoop": ("max_epochs", "val_interval", "val_begin")}
_MMENGINE_VAL_INTERVAL = {"IterBasedTrainLoop": 1000, "EpochBasedTrainLoop": 1}

# Top-level keys MMEngine's Runner reads that have no counterpart here, with the reason.
_NO_COUNTERPART = {
    "env_cfg": "Accelerate sets up the processes (dist settings: `accelerate launch`; cudnn_benchmark is off so runs "
               "are deterministic)",
    "log_processor": "LoggerHook publishes interval means itself (default_hooks.logger)",
    "log_level": "set by the CLI (stages log at INFO)",
    "visualizer": "runs are tracked in MLflow (mlflow section); no Visualizer",
    "vis_backends": "runs are tracked in MLflow (mlflow section); no vis backends",
    "default_scope": "no registries or scopes: `type:` names resolve to built-ins, torch classes or import paths",
    "launcher": "`accelerate launch` starts the processes",
    "work_dir": "work dirs are `work_dirs/<params hash>/`",
    "auto_scale_lr": "no automatic LR scaling: set optim.lr for your batch size",
    "tta_model": "no test-time augmentation",
    "tta_pipeline": "no test-time augmentation",
    "custom_imports": "components are named by dotted import path in `type:`; nothing to import first",
    "experiment_name": "MLflow runs are named by mlflow.run_name or the DVC experiment",
    "val_dataloader": None, "test_dataloader": None, "train_dataloader": None,  # handled, never reported here
}
_MMCV_KEYS = ("lr_config", "optimizer_config", "runner", "checkpoint_config", "log_config", "evaluation", "workflow",
              "dist_params", "cudnn_benchmark", "opencv_num_threads", "mp_start_method", "total_iters")


@dataclass
class Mapping:
    """The params.yaml sections mapped so far, the keys that did not map (key, reason) and notes."""

    params: dict[str, Any] = field(default_factory=dict)
    unmapped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def skip(self, key: str, reason: str) -> None:
        self.unmapped.append((key, reason))

    def lines(self) -> list[str]:
        return ([f"{key}: not mapped ({reason})" for key, reason in self.unmapped]
                + [f"note: {note}" for note in self.notes])


def map_config(cfg: dict[str, Any]) -> Mapping:
    """params.yaml sections for the MMSeg config `cfg` (as `mmcfg_reader.read_config` returns it)."""
    out = Mapping()
    loop_type = _map_train_cfg(cfg, out)
    _map_randomness(cfg, out)
    _map_start(cfg, out)
    _map_data(cfg, out)
    model = map_model(cfg.get("model"), out.skip)
    if model is not None:
        out.params["model"] = model
    _map_evaluator(cfg, out)
    _map_optim(cfg, out)
    _map_schedulers(cfg, out, loop_type)
    for name in ("val_cfg", "test_cfg"):
        _map_eval_loop(cfg, name, out)
    _map_hooks(cfg, out, loop_type)
    handled = {"optim_wrapper", "optimizer", "param_scheduler", "train_cfg", "val_cfg", "test_cfg", "default_hooks",
               "custom_hooks", "randomness", "load_from", "resume", "model", "val_evaluator", "test_evaluator"}
    for key in cfg:
        if key in handled or (key in _NO_COUNTERPART and _NO_COUNTERPART[key] is None):
            continue
        if key in _NO_COUNTERPART:
            out.skip(key, str(_NO_COUNTERPART[key]))
        elif key in _MMCV_KEYS:
            out.skip(key, "an MMSeg 0.x (MMCV runner) key; MMSeg 1.x configs say this in optim_wrapper, "
                          "param_scheduler, train_cfg or default_hooks, which is what import-mmseg reads")
        else:
            out.skip(key, "not a setting MMEngine's Runner reads: a variable the config uses for other values, "
                          "which are mapped or listed where they are used")
    order = ("seed", "deterministic", "resume", "load_from", "data", "model", "evaluator", "optim", "optim_wrapper",
             "param_scheduler", "train_cfg", "val_cfg", "test_cfg", "default_hooks", "custom_hooks")
    out.params = {k: out.params[k] for k in order if k in out.params}
    return out


def _kwargs(node: dict[str, Any], allowed: tuple[str, ...] | set[str], path: str, out: Mapping, why: str) -> dict:
    """The keys of `node` in `allowed`; each other key (but `type`) is reported under `path`."""
    kept = {}
    for key, value in node.items():
        if key == "type":
            continue
        if key in allowed:
            kept[key] = value
        else:
            out.skip(f"{path}.{key}", why)
    return kept


def _map_train_cfg(cfg: dict[str, Any], out: Mapping) -> str:
    node = cfg.get("train_cfg")
    if node is None:
        return "IterBasedTrainLoop"
    if not isinstance(node, dict):
        out.skip("train_cfg", f"expected a dict, got {node!r}")
        return "IterBasedTrainLoop"
    loop = short_type(node.get("type"))
    if loop is None and "by_epoch" in node:  # MMEngine's other spelling of the loop kind
        loop = "EpochBasedTrainLoop" if node["by_epoch"] else "IterBasedTrainLoop"
        node = {k: v for k, v in node.items() if k != "by_epoch"}
    if loop not in _LOOP_KEYS:
        out.skip("train_cfg", f"loop type {loop!r}: the train loops here are {', '.join(_LOOP_KEYS)}")
        return "IterBasedTrainLoop"
    kept = _kwargs(node, _LOOP_KEYS[loop], "train_cfg", out, f"{loop} here takes {', '.join(_LOOP_KEYS[loop])}")
    kept.setdefault("val_interval", _MMENGINE_VAL_INTERVAL[loop])  # MMEngine's default, not ours (200)
    out.params["train_cfg"] = {"type": loop, **kept}
    return loop


def _map_eval_loop(cfg: dict[str, Any], name: str, out: Mapping) -> None:
    node = cfg.get(name)
    if node is None:
        return
    want = "ValLoop" if name == "val_cfg" else "TestLoop"
    if not isinstance(node, dict) or short_type(node.get("type", want)) != want:
        out.skip(name, f"the only {name[:-4]} loop here is {want}")
        return
    _kwargs(node, (), name, out, f"{want} here takes no arguments (fp16 evaluation: use AmpOptimWrapper's dtype)")
    out.params[name] = {"type": want}


def _map_randomness(cfg: dict[str, Any], out: Mapping) -> None:
    node = cfg.get("randomness")
    if not isinstance(node, dict):
        if node is not None:
            out.skip("randomness", f"expected a dict, got {node!r}")
        return
    for key, value in node.items():
        if key == "seed" and isinstance(value, int) and not isinstance(value, bool):
            out.params["seed"] = value
        elif key == "seed":
            out.skip("randomness.seed", f"{value!r}: runs here are seeded by a fixed integer (MMEngine's None draws "
                                        f"a random one); the default seed 42 applies")
        elif key == "deterministic" and isinstance(value, bool):
            out.params["deterministic"] = value
        else:
            out.skip(f"randomness.{key}", "no such setting here (every process uses the same seed; "
                                          "samplers and workers derive theirs from it)")


def _map_start(cfg: dict[str, Any], out: Mapping) -> None:
    load_from, resume = cfg.get("load_from"), cfg.get("resume")
    if isinstance(load_from, str) and (load_from.endswith(".safetensors") or "://" not in load_from
                                        and not load_from.endswith((".pth", ".pt", ".bin"))):
        out.params["load_from"] = load_from
    elif load_from is not None:
        out.skip("load_from", f"{load_from!r}: weights load from a local .safetensors file or checkpoint directory "
                              f"(nothing is unpickled or downloaded); convert the checkpoint and set load_from")
    if resume is True:
        out.params["resume"] = "auto"
    elif resume not in (None, False):
        out.skip("resume", f"{resume!r}: resume here is auto, false or a checkpoint directory")
    elif resume is False and "resume" in cfg:
        out.skip("resume", "False is MMEngine's default; here `resume: auto` (the default) continues a run of the "
                           "same params after an interruption; write `resume: false` to always start over")


def _map_data(cfg: dict[str, Any], out: Mapping) -> None:
    data: dict[str, Any] = {}
    pipelines: dict[str, tuple[Any, list[dict[str, Any]]]] = {}  # params key -> (MMSeg's list, mapped steps)
    for split in ("train", "val", "test"):
        key = f"{split}_dataloader"
        node = cfg.get(key)
        if node is None:
            continue
        if not isinstance(node, dict):
            out.skip(key, f"expected a dict, got {node!r}")
            continue
        for name, value in node.items():
            path = f"{key}.{name}"
            if name == "batch_size":
                target = "batch_size" if split == "train" else "val_batch_size"
                if target in data and data[target] != value:
                    out.skip(path, f"{value}: validation and test share data.val_batch_size "
                                   f"(= {data[target]}, from val_dataloader)")
                else:
                    data[target] = value
            elif name == "num_workers" and split == "train":
                data["num_workers"] = value
            elif name in ("pin_memory", "drop_last") and split == "train":
                data[name] = value
            elif name in ("num_workers", "pin_memory"):
                if value != data.get(name, value):
                    out.skip(path, f"{value!r}: one data.{name} serves every split (= {data[name]!r}, from "
                                   f"train_dataloader)")
            elif name == "sampler":
                if not _plain_sampler(value, split):
                    out.skip(path, "the loaders here shuffle the train split (seeded) and read val/test in order; "
                                   "no other samplers")
            elif name == "dataset":
                map_dataset(value, path, split, pipelines, out.skip)
            else:
                out.skip(path, "no such loader setting here (data.* holds batch sizes, workers, pin_memory, "
                               "drop_last for every split)")
    if pipelines:
        # flip: null, since a base's `flip` (the shipped params say true) would contradict the pipeline's own steps.
        data["dataset"] = {"flip": None, **{key: steps for key, (_, steps) in pipelines.items()}}
    if data:
        out.params["data"] = data


def _plain_sampler(node: Any, split: str) -> bool:
    if not isinstance(node, dict) or short_type(node.get("type")) not in ("DefaultSampler", "InfiniteSampler"):
        return False
    return bool(node.get("shuffle", True)) == (split == "train") and set(node) <= {"type", "shuffle", "seed"}


def _map_evaluator(cfg: dict[str, Any], out: Mapping) -> None:
    val, test = cfg.get("val_evaluator"), cfg.get("test_evaluator")
    if val is not None:
        if isinstance(val, dict) and short_type(val.get("type")) == "IoUMetric":
            kept: dict[str, Any] = {"type": "IoUMetric"}
            for key, value in val.items():
                if key == "ignore_index":
                    kept[key] = value
                elif key == "iou_metrics" and value == ["mIoU"]:
                    continue  # IoUMetric here reports mIoU (with mAcc, aAcc) always
                elif key != "type":
                    out.skip(f"val_evaluator.{key}", f"{value!r}: IoUMetric here reports mIoU, mAcc, aAcc and the "
                                                     f"per-class values; it takes only ignore_index")
            out.params["evaluator"] = kept
        else:
            out.skip("val_evaluator", "the evaluator here is IoUMetric (or your own class by dotted path)")
    if test is not None and test != val:
        out.skip("test_evaluator", "validation and the eval stage share one `evaluator`, taken from val_evaluator")


def _map_optim(cfg: dict[str, Any], out: Mapping) -> None:
    wrapper = cfg.get("optim_wrapper")
    if wrapper is None:
        if cfg.get("optimizer") is not None:
            out.skip("optimizer", "MMEngine reads the optimizer from optim_wrapper.optimizer, which this config "
                                  "does not set (an MMSeg 0.x config?)")
        return
    if not isinstance(wrapper, dict):
        out.skip("optim_wrapper", f"expected a dict, got {wrapper!r}")
        return
    if "optimizer" in cfg and cfg["optimizer"] != wrapper.get("optimizer"):
        out.skip("optimizer", "MMEngine uses optim_wrapper.optimizer; this top-level value differs and is unused")
    kind = short_type(wrapper.get("type", "OptimWrapper"))
    if kind not in _WRAPPERS:
        out.skip("optim_wrapper", f"wrapper type {kind!r}: the wrappers here are {', '.join(_WRAPPERS)}")
        return
    mapped: dict[str, Any] = {"type": kind}
    constructor = short_type(wrapper.get("constructor"))
    for key, value in wrapper.items():
        path = f"optim_wrapper.{key}"
        if key in ("type", "constructor"):
            continue
        if key == "optimizer":
            _map_optimizer(value, out)
        elif key == "paramwise_cfg":
            if value is not None:
                mapped[key] = _map_paramwise(value, constructor, out)
        elif key == "dtype" and kind == "AmpOptimWrapper" and value not in (None, "float16", "bfloat16"):
            out.skip(path, f"{value!r}: the AMP dtypes here are float16 and bfloat16")
        elif key in _WRAPPER_KEYS[kind]:
            mapped[key] = value
        else:
            out.skip(path, f"{kind} here takes {', '.join(_WRAPPER_KEYS[kind])}, paramwise_cfg, constructor")
    if constructor == "LayerDecayOptimizerConstructor":
        mapped["constructor"] = _LAYER_DECAY  # MMSeg's deprecated name for layer-wise decay on ViTs
        paramwise = mapped.setdefault("paramwise_cfg", {})
        paramwise.setdefault("decay_type", "layer_wise_vit")
    elif constructor == _LAYER_DECAY:
        mapped["constructor"] = constructor
    elif constructor not in (None, "DefaultOptimWrapperConstructor"):
        out.skip("optim_wrapper.constructor", f"{constructor!r}: the constructors here are "
                                              f"DefaultOptimWrapperConstructor and {_LAYER_DECAY}")
    out.params["optim_wrapper"] = mapped


def _map_optimizer(node: Any, out: Mapping) -> None:
    kind = short_type(node.get("type")) if isinstance(node, dict) else None
    if kind not in TORCH_OPTIMIZERS:
        out.skip("optim_wrapper.optimizer", f"type {kind!r} is not a torch.optim optimizer; name its class by "
                                            f"dotted import path in optim.type")
        return
    out.params["optim"] = {"type": kind, **{k: v for k, v in node.items() if k != "type"}}


def _map_paramwise(node: dict[str, Any], constructor: str | None, out: Mapping) -> dict[str, Any]:
    path = "optim_wrapper.paramwise_cfg"
    if constructor == "LayerDecayOptimizerConstructor":
        node = dict(node)
        if "layer_decay_rate" in node:  # MMSeg renames it to decay_rate, then runs the same constructor
            node["decay_rate"] = node.pop("layer_decay_rate")
    if constructor in ("LayerDecayOptimizerConstructor", _LAYER_DECAY):
        allowed: tuple[str, ...] = ("decay_rate", "decay_type", "num_layers")
        why = f"{_LAYER_DECAY} here takes decay_rate, decay_type, num_layers"
    else:
        allowed, why = _DEFAULT_PARAMWISE, f"the default constructor here takes {', '.join(_DEFAULT_PARAMWISE)}"
    return _kwargs({"type": None, **node}, allowed, path, out, why)


def _map_schedulers(cfg: dict[str, Any], out: Mapping, loop: str) -> None:
    from engine.optim.schedulers import SCHEDULERS, scheduler_kwargs

    entries = cfg.get("param_scheduler")
    if entries is None:
        return
    if isinstance(entries, dict):
        entries = [entries]  # MMEngine takes one scheduler as a dict too
    mapped = []
    for i, entry in enumerate(entries):
        path = f"param_scheduler.{i}"
        kind = short_type(entry.get("type")) if isinstance(entry, dict) else None
        if kind not in SCHEDULERS:
            out.skip(path, f"scheduler type {kind!r} is not one of the schedulers here (docs/config.md)")
            continue
        kept = _kwargs(entry, scheduler_kwargs(kind), path, out, f"{kind} here does not take it")
        if "by_epoch" not in kept and loop == "IterBasedTrainLoop":
            out.notes.append(f"{path}.by_epoch: not set; MMEngine would step {kind} per epoch (a constant value in "
                             f"an iteration loop), here it follows the loop: per iteration")
        mapped.append({"type": kind, **kept})
    out.params["param_scheduler"] = mapped


def _hook_args(kind: str) -> set[str]:
    from engine.config.resolve import resolve_type

    params = inspect.signature(resolve_type(kind, "hook").__init__).parameters
    return {name for name in params if name != "self"} | {"priority"}


def _map_hook(node: Any, path: str, out: Mapping, loop: str) -> dict[str, Any] | None:
    from engine.config.resolve import builtin_names

    hooks = builtin_names("hook")  # the engine's and the segmentation package's (SegVisualizationHook)
    kind = short_type(node.get("type")) if isinstance(node, dict) else None
    if kind not in hooks:
        reasons = {"IterTimerHook": "the logger hook times iterations itself (train/time, data_time)",
                   "RuntimeInfoHook": "runtime info is part of the runner here"}
        out.skip(path, reasons.get(str(kind), f"no hook type {kind!r} here; the hooks are {', '.join(hooks)}"))
        return None
    kept = _kwargs(node, _hook_args(kind), path, out, f"{kind} here does not take it")
    if kind == "CheckpointHook":
        kept.setdefault("interval", -1)  # MMEngine's default: no interval checkpoints (ours: every iteration)
        if "by_epoch" not in kept and loop == "IterBasedTrainLoop":
            out.notes.append(f"{path}.by_epoch: not set; MMEngine would save per epoch, here it follows the loop: "
                             f"per iteration")
    return {"type": kind, **kept}


def _map_hooks(cfg: dict[str, Any], out: Mapping, loop: str) -> None:
    defaults, custom = cfg.get("default_hooks"), cfg.get("custom_hooks")
    if isinstance(defaults, dict):
        mapped: dict[str, Any] = {}
        for name, node in defaults.items():
            if node is None:
                mapped[name] = None  # removes that default hook, in both systems
                continue
            hook = _map_hook(node, f"default_hooks.{name}", out, loop)
            if hook is not None:
                mapped[name] = hook
        if mapped:
            out.params["default_hooks"] = mapped
    elif defaults is not None:
        out.skip("default_hooks", f"expected a dict, got {defaults!r}")
    if isinstance(custom, list):
        hooks = [_map_hook(node, f"custom_hooks.{i}", out, loop) for i, node in enumerate(custom)]
        out.params["custom_hooks"] = [h for h in hooks if h is not None]
    elif custom is not None:
        out.skip("custom_hooks", f"expected a list, got {custom!r}")
