"""The params.yaml contract: every plain key with its default, type and meaning (docs/config.md is built from it)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Key:
    """One params.yaml key: dotted path, default, accepted Python types (None = anything), allowed values, meaning.

    A key whose default is null may always be null (= unset), whatever its types."""

    path: str
    default: Any
    types: tuple[type, ...] | None
    doc: str
    choices: tuple[Any, ...] | None = None


_NUM = (int, float)
_OPT_STR = (str, type(None))

KEYS: tuple[Key, ...] = (
    Key("seed", 42, (int,), "Global seed: python, numpy, torch, data order, augmentation and the generated dataset."),
    Key("deterministic", True, (bool,), "Use deterministic torch algorithms (bitwise-reproducible runs on CPU)."),
    Key("prepare", None, (dict, type(None)), "What the `prepare` stage runs to produce `data.root`: "
        "`{type, ...kwargs}` (a callable's short name or dotted path; it is offered `root`, `seed`, `classes` when "
        "its signature names them), or null when the data is ready (DVC then tracks `data.root` as a dependency)."),
    Key("data.root", "data", (str,), "The dataset directory: `prepare` writes it, the datasets read it (offered to "
        "them as `root`)."),
    Key("data.classes", None, (list, type(None)), "Class names, offered as `classes` / `num_classes` to the model, "
        "datasets, evaluator and prepare callable whose signatures ask for them; null = the components set their own."),
    Key("data.dataset", None, (dict, type(None)), "`{type, ...kwargs}`: the dataset class, built once per split with "
        "`split=` (`train`, `val`, `test`); it is offered `root`, `seed`, `classes`, `num_classes`. Required."),
    Key("data.collate_fn", None, _OPT_STR, "Dotted path of the function that batches items; null = torch's default "
        "collate (tuples, dicts and tensors stack as you expect)."),
    Key("data.batch_size", 16, (int,), "Training batch size per process (per micro-batch under accumulation)."),
    Key("data.val_batch_size", 50, (int,), "Batch size of validation and test loaders."),
    Key("data.num_workers", 0, (int,), "DataLoader worker processes (0 = load in the main process)."),
    Key("data.pin_memory", False, (bool,), "Pin host memory of batches (faster copies to a GPU)."),
    Key("data.drop_last", False, (bool,), "Drop the last incomplete training batch of each epoch."),
    Key("model", None, (dict, type(None)), "`{type, ...kwargs}`: the model class (a built-in name or a dotted path). "
        "It is called as `model(batch, mode='loss')` -> dict of losses and `model(batch, mode='predict')` -> outputs "
        "for the evaluator; `num_classes` / `classes` are offered from `data.classes`. Required."),
    Key("evaluator", None, (dict, type(None)), "`{type, ...kwargs}`: an object with `reset()`, `process(batch, "
        "outputs)` and `compute() -> dict[str, float]`, used by validation and the eval stage. Required."),
    Key("optim.type", "AdamW", (str,), "Optimizer: any `torch.optim` class name or a dotted import path; other keys "
        "are its keyword arguments."),
    Key("optim.lr", None, _NUM, "Base learning rate (`dvc exp run -S optim.lr=6e-5` works); "
        "unset = the optimizer's own default, with a warning."),
    Key("optim_wrapper.type", "OptimWrapper", (str,), "`OptimWrapper` (fp32) or `AmpOptimWrapper` (mixed precision).",
        ("OptimWrapper", "AmpOptimWrapper")),
    Key("optim_wrapper.dtype", None, _OPT_STR, "AMP dtype: `bfloat16` (CPU or CUDA) or `float16` (CUDA only); "
        "null = bfloat16 on CPU, float16 on CUDA. Only for AmpOptimWrapper.", (None, "float16", "bfloat16")),
    Key("optim_wrapper.loss_scale", "dynamic", (str, int, float, dict), "fp16 loss scaling: `dynamic`, a fixed number, "
        "or a dict of torch GradScaler arguments."),
    Key("optim_wrapper.accumulative_counts", 1, (int,), "Micro-batches per optimizer step; one iteration = one "
        "optimizer step over this many micro-batches."),
    Key("optim_wrapper.clip_grad", None, (dict, type(None)), "`{max_norm, norm_type}` to clip by norm or "
        "`{type: value, clip_value}` to clip by value; null = no clipping (grad_norm is still logged)."),
    Key("optim_wrapper.paramwise_cfg", None, (dict, type(None)), "Per-parameter lr/weight-decay rules (custom_keys, "
        "bias_lr_mult, norm_decay_mult, ...; or decay_rate/decay_type/num_layers for layer-wise decay)."),
    Key("optim_wrapper.constructor", None, _OPT_STR, "Param-group builder: null (= DefaultOptimWrapperConstructor) "
        "or LearningRateDecayOptimizerConstructor."),
    Key("param_scheduler", [], (list,), "Parameter schedulers in order (`type`, `begin`, `end`, `by_epoch`, kwargs); "
        "they chain as in MMEngine. `by_epoch` defaults to the train loop's kind."),
    Key("train_cfg.type", "IterBasedTrainLoop", (str,), "Train loop.", ("IterBasedTrainLoop", "EpochBasedTrainLoop")),
    Key("train_cfg.max_iters", None, (int, type(None)), "Iterations (optimizer steps) to train; required by "
        "IterBasedTrainLoop."),
    Key("train_cfg.max_epochs", None, (int, type(None)), "Epochs to train; required by EpochBasedTrainLoop."),
    Key("train_cfg.val_interval", 200, (int,), "Validate every this many iterations (or epochs); the last one always."),
    Key("train_cfg.val_begin", 1, (int,), "First iteration (or epoch) at which validation may run."),
    Key("train_cfg.nonfinite", "stop", (str,), "A NaN/inf loss: `stop` the run (naming the iteration and the last "
        "good checkpoint; nothing of that step is applied) or `skip` that optimizer step (counted in "
        "`train/skipped_steps`; the schedules do not advance).", ("stop", "skip")),
    Key("train_cfg.max_nonfinite_skips", 5, (int,), "With `nonfinite: skip`: this many skipped iterations in a row "
        "end the run."),
    Key("val_cfg.type", "ValLoop", (str,), "Validation loop.", ("ValLoop",)),
    Key("test_cfg.type", "TestLoop", (str,), "Test loop (the eval stage).", ("TestLoop",)),
    Key("default_hooks", {}, (dict,),
        "Name -> hook config; a key replaces that default hook's config, null removes it."),
    Key("custom_hooks", [], (list,),
        "Extra hooks (`type`, optional `priority`, kwargs), registered after the defaults."),
    Key("mlflow.tracking_uri", None, _OPT_STR, "MLflow store; null = `sqlite:///<project root>/mlflow.db` "
        "(`MLFLOW_TRACKING_URI` overrides both)."),
    Key("mlflow.experiment_name", "trainline", (str,), "MLflow experiment the runs go to."),
    Key("mlflow.run_name", None, _OPT_STR, "Run name; null = the DVC experiment name, else MLflow's generated one."),
    Key("mlflow.log_checkpoints", "last", (str,), "Checkpoints uploaded as artifacts at the end of training: "
        "the last one, the best ones (`default_hooks.checkpoint.save_best`), every one in the work dir, or none.",
        ("none", "last", "best", "all")),
    Key("mlflow.system_metrics", False, (bool,), "Also record MLflow's own system metrics (`system/cpu_utilization_"
        "percentage`, memory, disk, network, GPU when there is one) on the run, sampled by MLflow's psutil-based "
        "monitor every `MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL` seconds (default 10); their step counts samples, "
        "not iterations."),
    Key("mlflow.register_model", None, _OPT_STR, "Registered-model name: at the end of training the final weights "
        "are logged as an MLflow model (PyTorch flavour, so `mlflow.pytorch.load_model` and the pyfunc load it) "
        "under the run's `model` artifacts and registered as a new version of this name; null = not registered."),
    Key("resume", "auto", (str, bool), "`auto`: continue from the newest intact checkpoint of the same training "
        "params (`work_dirs/<params hash>/`); `false`: start from the beginning; a checkpoint directory: continue "
        "from exactly that one (refused, naming the differing keys, if it was trained with other params)."),
    Key("load_from", None, _OPT_STR, "Weights to start from (fine-tuning): a `.safetensors` file or a checkpoint "
        "directory; only the weights are taken (not the optimizer or the position). Ignored when resuming."),
    Key("load_strict", False, (bool,), "`load_from` must match the model key for key and shape (true), or the "
        "matching tensors are loaded and the rest named in a warning (false, MMEngine's default)."),
    Key("eval.split", "test", (str,), "Split the eval stage scores.", ("val", "test")),
    Key("eval.headline", None, (list, type(None)), "Metric names shown in the console, written to metrics/*.json, "
        "plotted and compared; null = the evaluator's `headline` attribute, else every metric without a dot."),
    # dist: processes and machines (engine/launch.py; docs/scale-out.md).
    Key("dist.num_processes", 1, (int,), "Processes over all machines (Accelerate's meaning), one per GPU or, without "
        "GPUs, gloo processes on the CPU; more than 1 makes the train and eval stages start themselves through "
        "`accelerate launch`. `data.batch_size` is per process. Part of the params hash."),
    Key("dist.num_machines", 1, (int,), "Machines; each runs the same stage command (`dist.num_processes` must be a "
        "multiple)."),
    Key("dist.machine_rank", None, (int, type(None)), "This machine's rank, 0 .. num_machines - 1; null = "
        "`SLURM_PROCID` inside an `srun` task, else 0."),
    Key("dist.main_process_ip", None, _OPT_STR, "Address of machine 0; null = the Slurm job's first node inside "
        "`srun`, else 127.0.0.1 (so required with num_machines > 1 outside Slurm)."),
    Key("dist.main_process_port", None, (int, type(None)), "Rendezvous port on machine 0; null = 29500 (inside "
        "`srun`: 20000 + job id mod 20000)."),
    Key("dist.backend", None, _OPT_STR, "torch.distributed backend; null = Accelerate's choice (nccl on CUDA, gloo "
        "on CPU).", (None, "gloo", "nccl", "mpi", "ucc", "xccl")),
    Key("dist.timeout", 1800, (int,), "Seconds a collective waits for the other processes before failing (a rank "
        "that hangs or a machine that is gone ends the run instead of blocking it)."),
    Key("dist.config_file", None, _OPT_STR, "Your own `accelerate config` file instead of the keys above (passed as "
        "`accelerate launch --config_file`; its num_processes is the one hashed)."),
)

# Keys of earlier params files and where their values live now (refused with a pointer to the new key).
MOVED = {
    "data.source": "prepare.type (SyntheticShapes generates the example's data)",
    "data.image_size": "prepare.image_size",
    "data.num_train": "prepare.num_train",
    "data.num_val": "prepare.num_val",
    "data.num_test": "prepare.num_test",
    "data.max_objects": "prepare.max_objects",
    "data.augment": "data.dataset.flip (the dataset's own argument)",
}

# Defaults of `default_hooks`: MMEngine's set (runtime info is part of the runner itself).
DEFAULT_HOOKS: dict[str, dict[str, Any]] = {
    "logger": {"type": "LoggerHook", "interval": 10},
    "param_scheduler": {"type": "ParamSchedulerHook"},
    "checkpoint": {"type": "CheckpointHook", "interval": 200, "max_keep_ckpts": 2},
    "sampler_seed": {"type": "DistSamplerSeedHook"},
    "mlflow": {"type": "MLflowLoggerHook"},
}

# Sections that shape the trained weights (prepare: through the data it writes): their hash keys the work dir and
# guards automatic resume.
TRAIN_SECTIONS = ("seed", "deterministic", "prepare", "data", "model", "evaluator", "optim", "optim_wrapper",
                  "param_scheduler", "train_cfg", "val_cfg", "default_hooks", "custom_hooks", "load_from",
                  "load_strict")

# Hooks that only observe training (what they log, when they save): their settings are left out of the params hash,
# so changing them resumes the same training instead of starting over. Every other hook (EMA, early stopping, the
# scheduler and sampler hooks, any hook of your own) may shape the weights and stays in it.
OBSERVING_HOOKS = frozenset({"LoggerHook", "CheckpointHook", "MLflowLoggerHook", "EmptyCacheHook"})


def observing_hooks() -> frozenset[str]:
    """The engine's observing hooks and those a task package declares (the example's SegVisualizationHook)."""
    from engine.config.resolve import task_observing_hooks

    return OBSERVING_HOOKS | task_observing_hooks()


def training_identity(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that shapes the trained weights: what the params hash is taken over."""
    out = {k: cfg.get(k) for k in TRAIN_SECTIONS}
    observing = observing_hooks()

    def shapes(entry: Any) -> bool:
        return not (isinstance(entry, dict) and entry.get("type") in observing)

    if isinstance(out["default_hooks"], dict):
        out["default_hooks"] = {k: v for k, v in out["default_hooks"].items() if shapes(v)}
    if isinstance(out["custom_hooks"], list):
        out["custom_hooks"] = [h for h in out["custom_hooks"] if shapes(h)]
    # The number of processes changes the weights in float (gradients are summed in another order, and batch
    # statistics are per process), so it is part of the identity; where and how they meet (machines, ports,
    # backend) is not. Left out for one process, so single-process hashes are those of before `dist` existed.
    processes = _world_size(cfg)
    if processes > 1:
        out["dist"] = {"num_processes": processes}
    return out


def _world_size(cfg: dict[str, Any]) -> int:
    if not isinstance(cfg.get("dist"), dict):
        return 1
    from engine.launch import world_size

    try:
        return world_size(cfg)
    except (OSError, ValueError, TypeError):  # an unreadable config file: `trainline check` reports it
        return 1

# Sections whose extra keys are constructor kwargs, checked against the class signature instead of KEYS.
OPEN_SECTIONS = ("prepare", "data.dataset", "model", "evaluator", "optim", "train_cfg", "val_cfg", "test_cfg")
SECTIONS = tuple(dict.fromkeys(k.path.split(".")[0] for k in KEYS))


def defaults() -> dict[str, Any]:
    """The nested default config built from KEYS."""
    out: dict[str, Any] = {}
    for key in KEYS:
        node = out
        *parents, leaf = key.path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = copy.deepcopy(key.default)
    out["default_hooks"] = copy.deepcopy(DEFAULT_HOOKS)
    return out


def reference_table() -> str:
    """The Markdown table of every plain key (docs/config.md embeds it; a test keeps the two in sync)."""
    import json

    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key in KEYS:
        default = json.dumps(key.default)
        allowed = f" Allowed: {', '.join('null' if c is None else str(c) for c in key.choices)}." if key.choices else ""
        lines.append(f"| `{key.path}` | `{default}` | {key.doc}{allowed} |")
    return "\n".join(lines) + "\n"


def training_hash(cfg: dict[str, Any]) -> str:
    """The params hash: names the work dir (`work_dirs/<hash>/`) and guards resume; one function for every user."""
    from engine.config.flat import params_hash

    identity = training_identity(cfg)
    return params_hash(identity, tuple(identity))


def resume_identity_text() -> str:
    """The docs/config.md paragraph saying which keys shape the weights (a test keeps the two in sync)."""
    sections = ", ".join(f"`{k}`" for k in TRAIN_SECTIONS)
    observing = ", ".join(f"`{k}`" for k in sorted(observing_hooks()))
    return (f"The params hash (the work dir `work_dirs/<hash>/`, the resume guard) covers {sections}, except the "
            f"entries of `default_hooks` / `custom_hooks` whose type only observes training: {observing}. Changing "
            f"those (intervals, `max_keep_ckpts`, the progress bar, MLflow batching) resumes the same training; any "
            f"other change starts a new one. With more than one process, `dist.num_processes` is covered too "
            f"(the other `dist` keys are not). Not covered at all: `resume`, `test_cfg`, `mlflow`, `eval`.\n")
