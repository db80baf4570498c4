"""Check a params config before any heavy work: every problem at once, each naming its params.yaml key path."""

from __future__ import annotations

import warnings as warnings_module
from pathlib import Path
from typing import Any

from engine.config import merge, strip_delete
from engine.config.resolve import resolve_type
from engine.config.schema import DEFAULT_HOOKS, KEYS, MOVED, OPEN_SECTIONS, SECTIONS, defaults
from engine.construct import (
    OFFERS_BY_KIND,
    REFUSALS,
    bound_kwargs,
    kwargs_problems,
    offers,
    quotes_hint,
    refusal,
    type_name,
    type_ok,
)
from engine.errors import ConfigError, UserError
from engine.suggest import did_you_mean

_BY_PATH = {k.path: k for k in KEYS}
# Prefixes of KEYS that are themselves mappings with a closed set of keys.
_CLOSED_PREFIXES = {p.rsplit(".", 1)[0] for p in _BY_PATH if "." in p} - set(OPEN_SECTIONS)
# Constructor arguments the engine supplies itself; a user setting them would be overridden silently.
_INJECTED = {
    "optimizer": {"params"},
    "hook": set(),
    "train_loop": {"dataloader"},
    "val_loop": {"dataloader", "evaluator"},
    "test_loop": {"dataloader", "evaluator"},
}


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """The full config: defaults merged under the user's values; `null` in default_hooks removes that hook."""
    cfg = merge(strip_delete(raw), defaults())
    if isinstance(cfg["default_hooks"], dict):  # anything else is reported by check_params
        cfg["default_hooks"] = {k: v for k, v in cfg["default_hooks"].items() if v is not None}
    return cfg


def check_params(raw: dict[str, Any], *, data: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Validate `raw` (a loaded params.yaml); return (resolved config, warnings) or raise ConfigError listing all.

    With `data`, the datasets are built too where the data is there (or must be: `prepare: null`); the prepare
    stage passes False, since it is about to rewrite them."""
    problems: list[str] = []
    warnings: list[str] = []
    for section in raw:
        if section not in SECTIONS and section != "_base_":
            problems.append(f"{section}: unknown section{did_you_mean(section, list(SECTIONS))}; "
                            f"sections are {', '.join(SECTIONS)}")
    _check_closed(raw, "", problems)
    _check_default_hook_names(raw.get("default_hooks"), problems, warnings)
    cfg = resolve({k: v for k, v in raw.items() if k in SECTIONS})
    # Later checks assume the basic shapes of the sections they read; sections with a shape problem are skipped
    # so that every other problem is still reported in the same run.
    bad = _check_plain_types(cfg, problems)
    if "seed" not in bad and not 0 <= cfg["seed"] < 2**32:
        problems.append(f"seed: must be between 0 and 2**32 - 1 (numpy's seed range), got {cfg['seed']}")
        bad.add("seed")
    if not bad & {"resume", "load_from"}:
        _check_start(cfg, problems)
    if "mlflow" not in bad:
        _check_mlflow(cfg["mlflow"], problems)
    if isinstance(cfg["dist"], dict):  # each value of the wrong type is already reported; the rest still checked
        _check_dist(cfg, problems)
    train_size = None
    if "data" not in bad:
        train_size = _check_data(cfg, problems, data and "eval" not in bad)
    model = None
    if not bad & {"model", "data", "seed"}:
        model = _check_model(cfg, problems)
    if not bad & {"evaluator", "data", "seed"}:
        _check_component(cfg, "evaluator", "evaluator", problems, build=True)
    if not bad & {"prepare", "data", "seed"} and cfg["prepare"] is not None:
        _check_component(cfg, "prepare", "prepare", problems)
    if "eval" not in bad and cfg["eval"]["headline"] is not None:
        headline = cfg["eval"]["headline"]
        if not headline or not all(isinstance(h, str) and h for h in headline):
            problems.append(f"eval.headline: must be a non-empty list of metric names or null, got {headline!r}")
    optim_ok = "optim" not in bad and _check_optimizer(cfg, problems, warnings)
    loops_ok = not bad & {"train_cfg", "val_cfg", "test_cfg"} and _check_loops(cfg, problems)
    if not bad & {"default_hooks", "custom_hooks"}:
        _check_hooks(cfg, problems)
        if not bad & {"param_scheduler"} and cfg["param_scheduler"] and not any(
                isinstance(h, dict) and h.get("type") == "ParamSchedulerHook"
                for h in [*cfg["default_hooks"].values(), *cfg["custom_hooks"]]):
            problems.append("default_hooks.param_scheduler: removed, so the param_scheduler list would never be "
                            "applied; keep the hook or set param_scheduler: []")
    from engine.optim.checks import optim_wrapper_problems, scheduler_problems

    if not bad & {"optim", "optim_wrapper"}:
        found = optim_wrapper_problems(cfg, warnings)
        problems += found
        if not found and optim_ok and model is not None:
            _check_param_groups(cfg, model, problems)
    if loops_ok and "param_scheduler" not in bad:
        problems += scheduler_problems(cfg, warnings, build=optim_ok, epoch_length=_epoch_length(cfg, train_size, bad))
    if problems:
        raise ConfigError(problems)
    return cfg, warnings


def _check_start(cfg: dict[str, Any], problems: list[str]) -> None:
    """`resume` and `load_from` name things that exist (paths are relative to the directory the stage runs in)."""
    from pathlib import Path

    resume, load_from = cfg["resume"], cfg["load_from"]
    if isinstance(resume, str) and resume != "auto":
        if resume in ("true", "false", "") or not (Path(resume) / "meta.json").is_file():
            problems.append(f"resume: {resume!r} is not a checkpoint directory (one holding meta.json); use auto, "
                            f"false, or a path like work_dirs/<params hash>/iter_400")
    if load_from is not None:
        path = Path(load_from)
        if not (path.is_file() or (path / "model.safetensors").is_file()):
            problems.append(f"load_from: {load_from} not found; give a .safetensors file or a checkpoint directory "
                            f"(holding model.safetensors)")


def _check_mlflow(section: dict[str, Any], problems: list[str]) -> None:
    """`mlflow.register_model` is a name MLflow's registry takes (it refuses empty names and `/`, `:`) and that
    a search filter can quote (no quotes)."""
    name = section["register_model"]
    if name is not None and (not name.strip() or any(c in name for c in "/:'\"")):
        problems.append(f"mlflow.register_model: {name!r} is not a registered-model name MLflow accepts (non-empty, "
                        f"without '/', ':' or quotes); use e.g. shapes-unet, or null to register nothing")


def _check_closed(node: dict[str, Any], prefix: str, problems: list[str]) -> None:
    for key, value in node.items():
        path = f"{prefix}{key}"
        parent = prefix.rstrip(".")
        if key == "_delete_":
            continue
        if parent in _CLOSED_PREFIXES and path not in _BY_PATH and not any(p.startswith(path + ".") for p in _BY_PATH):
            allowed = sorted(p.rsplit(".", 1)[1] for p in _BY_PATH if p.rsplit(".", 1)[0] == parent)
            if path in MOVED:
                problems.append(f"{path}: moved to {MOVED[path]}")
                continue
            problems.append(f"{path}: unknown key{did_you_mean(str(key), allowed)}; {parent} accepts "
                            f"{', '.join(allowed)}")
            continue
        if isinstance(value, dict) and path in _CLOSED_PREFIXES:
            _check_closed(value, path + ".", problems)


def _check_plain_types(cfg: dict[str, Any], problems: list[str]) -> set[str]:
    """Type and choice problems of the KEYS; returns the top-level sections that have any."""
    before = len(problems)
    not_mappings: set[str] = set()
    for key in KEYS:
        node: Any = cfg
        parts = key.path.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict):
                parent = ".".join(parts[:depth])
                if parent not in not_mappings:
                    not_mappings.add(parent)
                    problems.append(f"{parent}: must be a mapping, got {node!r}")
                break
            node = node.get(part)
        else:
            if node is None and key.default is None:
                continue
            if key.types is not None and not type_ok(node, key.types):
                hint = quotes_hint(node, key.types)
                problems.append(f"{key.path}: must be {type_name(key.types)}, got {node!r}{hint}")
            elif key.choices is not None and node not in key.choices:
                shown = ", ".join("null" if c is None else str(c) for c in key.choices)
                close = did_you_mean(str(node), [str(c) for c in key.choices])
                problems.append(f"{key.path}: {node!r} is not allowed{close}; choose one of: {shown}")
    return {p.split(":", 1)[0].split(".", 1)[0] for p in problems[before:]}


def _epoch_length(cfg: dict[str, Any], train_size: int | None, bad: set[str]) -> int | None:
    """Train iterations per epoch as the build computes them (one process), or None when it cannot be known."""
    from engine.data import iters_per_epoch

    if train_size is None or "optim_wrapper" in bad or cfg["optim_wrapper"]["accumulative_counts"] < 1:
        return None
    if cfg["data"]["batch_size"] < 1:
        return None
    processes = 1 if "dist" in bad or not isinstance(cfg["dist"], dict) else _world_size(cfg)
    return iters_per_epoch(cfg, train_size, processes)


def _world_size(cfg: dict[str, Any]) -> int:
    from engine.launch import world_size

    try:
        return max(1, world_size(cfg))
    except (OSError, ValueError, TypeError):  # reported by _check_dist
        return 1


def _check_dist(cfg: dict[str, Any], problems: list[str]) -> None:
    """`dist`: counts at least 1, a machine rank below num_machines, a port, an address for machine 0 when there
    are several machines, and a readable accelerate config file."""
    import os

    from engine.launch import in_slurm_step

    dist = cfg["dist"]

    def number(name: str) -> int | None:
        value = dist.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    processes, machines, rank, port = (number(k) for k in ("num_processes", "num_machines", "machine_rank",
                                                            "main_process_port"))
    for name in ("num_processes", "num_machines", "timeout"):
        value = number(name)
        if value is not None and value < 1:
            problems.append(f"dist.{name}: must be at least 1, got {value}")
    if machines and processes and machines >= 1 and processes >= 1 and processes % machines:
        problems.append(f"dist.num_processes: {processes} processes do not split evenly over "
                        f"dist.num_machines: {machines} (num_processes counts all machines' processes, "
                        f"as in Accelerate); make it a multiple")
    if rank is not None and machines is not None and not 0 <= rank < max(machines, 1):
        problems.append(f"dist.machine_rank: must be 0 .. dist.num_machines - 1 = {machines - 1}, got {rank}")
    if port is not None and not 1 <= port <= 65535:
        problems.append(f"dist.main_process_port: must be a TCP port 1 .. 65535 (or null for 29500), got {port}")
    if machines is not None and machines > 1 and not dist["main_process_ip"] and not dist["config_file"] \
            and not ("SLURM_JOB_ID" in os.environ or in_slurm_step()):
        problems.append(f"dist.main_process_ip: required with dist.num_machines: {machines} (the "
                        f"address every machine reaches machine 0 at), unless the stage runs inside a Slurm job")
    path = dist["config_file"]
    if isinstance(path, str):
        _check_accelerate_config(path, problems)


def _check_accelerate_config(path: str, problems: list[str]) -> None:
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle)
    except OSError as exc:
        problems.append(f"dist.config_file: {path} cannot be read ({exc.strerror or exc}); give the file "
                        f"`accelerate config` wrote (e.g. ~/.cache/huggingface/accelerate/default_config.yaml)")
        return
    except yaml.YAMLError as exc:
        problems.append(f"dist.config_file: {path} is not YAML ({str(exc).splitlines()[0]})")
        return
    if not isinstance(loaded, dict):
        problems.append(f"dist.config_file: {path} must be a mapping of accelerate settings, got {loaded!r}")
        return
    for name in ("num_processes", "num_machines"):
        value = loaded.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.append(f"dist.config_file: {path}: {name} must be an integer of at least 1, got {value!r}")


def _check_data(cfg: dict[str, Any], problems: list[str], build: bool) -> int | None:
    """Problems of `data`; returns the training split's length when its dataset was built (else None)."""
    data = cfg["data"]
    for name in ("batch_size", "val_batch_size"):
        if data[name] < 1:
            problems.append(f"data.{name}: must be at least 1, got {data[name]}")
    if data["num_workers"] < 0:
        problems.append(f"data.num_workers: must be 0 or more, got {data['num_workers']}")
    classes = data["classes"]
    if classes is not None and (len(classes) < 2 or not all(isinstance(c, str) and c for c in classes)
                                or len(set(classes)) != len(classes)):
        problems.append(f"data.classes: must be at least 2 distinct names (or null), got {classes!r}")
    if data["collate_fn"] is not None:
        try:
            resolve_type(data["collate_fn"], "collate_fn")
        except LookupError as exc:
            problems.append(f"data.collate_fn: {exc}")
    if data["dataset"] is None:
        problems.append("data.dataset: required: `{type: my_pkg.data.MyDataset, ...}` (built once per split with "
                        "split=train|val|test)")
    elif not bad_node(data["dataset"], "data.dataset", problems):
        before = len(problems)
        _check_component(cfg, "data.dataset", "dataset", problems)
        if len(problems) == before and build:
            return _check_datasets(cfg, problems)
    return None


def _check_datasets(cfg: dict[str, Any], problems: list[str]) -> int | None:
    """Build each split's dataset as the train and eval stages will, when the data is there (or must be: with
    `prepare: null` nothing will write it), so missing files and refused values surface now. Returns the
    training split's length (None when the data is not there yet, is refused, or has no len())."""
    from engine.data import build_dataset

    root = Path(cfg["data"]["root"])
    if cfg["prepare"] is not None and not root.exists():
        return None  # the prepare stage writes it
    train_size = None
    for name in dict.fromkeys(("train", "val", cfg["eval"]["split"])):
        try:
            dataset = build_dataset(cfg, name)
        except UserError as exc:
            problems.append(str(exc) if str(exc).startswith(("data.", "prepare")) else f"data.dataset: {exc}")
            return None
        except (*REFUSALS, OSError, ZeroDivisionError) as exc:
            problems.append(f"data.dataset: building the {name} split failed: {type(exc).__name__}: {exc}")
            return None
        try:
            size = len(dataset)
        except TypeError:
            continue  # an iterable dataset: its length is unknown until it is read
        if size < 1:
            problems.append(f"data.dataset: the {name} split of {root} is empty")
            return None
        if name == "train":
            train_size = size
    return train_size


def bad_node(node: Any, path: str, problems: list[str]) -> bool:
    """A component node must be a mapping with a string `type`."""
    if not isinstance(node, dict) or "type" not in node:
        problems.append(f"{path}: must be a mapping with a `type` key, got {node!r}")
        return True
    return False


def _node_at(cfg: dict[str, Any], path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = node[part]
    return node


def _check_component(cfg: dict[str, Any], path: str, kind: str, problems: list[str], build: bool = False) -> Any:
    """A `{type, ...}` component: resolvable, its arguments bind with the engine's offers; with `build`, it is
    constructed as the build will (cheap components only). Returns the resolved target or the built object."""
    node = _node_at(cfg, path)
    if node is None:
        problems.append(f"{path}: required: `{{type: ...}}`; see docs/config.md")
        return None
    if bad_node(node, path, problems):
        return None
    try:
        target = resolve_type(node["type"], kind)
    except LookupError as exc:
        problems.append(f"{path}.type: {exc}")
        return None
    kwargs = {k: v for k, v in node.items() if k != "type"}
    offered = offers(cfg, kind)
    if kind == "dataset":
        offered["split"] = "train"
    before = len(problems)
    problems += kwargs_problems(target, kwargs, path, offered=offered, offerable=OFFERS_BY_KIND.get(kind, ()),
                                needs=("split",) if kind == "dataset" else ())
    # A component whose arguments are themselves configs (a dataset's transform pipeline) lists their problems
    # itself: a dataset is only built when its data is there, and the check must not wait for that.
    config_problems = getattr(target, "config_problems", None)
    if len(problems) == before and callable(config_problems):
        problems += config_problems(kwargs, path)
    if not build or len(problems) > before:
        return target
    try:
        with warnings_module.catch_warnings():
            warnings_module.simplefilter("ignore")
            return target(**bound_kwargs(target, kwargs, offered))
    except REFUSALS as exc:
        problems.append(refusal(target, kwargs, path, exc))
    return None


def _check_typed(node: Any, path: str, kind: str, problems: list[str], extra: tuple[str, ...] = ()) -> type | None:
    if not isinstance(node, dict):
        problems.append(f"{path}: must be a mapping with a `type` key, got {node!r}")
        return None
    try:
        cls = resolve_type(node.get("type"), kind)
    except LookupError as exc:
        problems.append(f"{path}.type: {exc}")
        return None
    kwargs = {k: v for k, v in node.items() if k != "type" and k not in extra}
    problems += kwargs_problems(cls, kwargs, path, engine_owned=_INJECTED.get(kind, set()))
    return cls


def _check_model(cfg: dict[str, Any], problems: list[str]) -> Any:
    """Known model and arguments, then a build on the meta device (no memory, no compute) so that argument values it
    refuses (`img_size` not divisible by `patch_size`, ...) surface now, not after data loading. Returns the meta
    model (for the param-group check) or None."""
    import torch

    before = len(problems)
    target = _check_component(cfg, "model", "model", problems)
    if target is None or len(problems) > before:
        return None
    kwargs = {k: v for k, v in cfg["model"].items() if k != "type"}
    try:
        with torch.device("meta"), warnings_module.catch_warnings():
            warnings_module.simplefilter("ignore")
            model = target(**bound_kwargs(target, kwargs, offers(cfg, "model")))
    except (*REFUSALS, NotImplementedError, RuntimeError) as exc:
        problems.append(refusal(target, kwargs, "model", exc))
        return None
    if not isinstance(model, torch.nn.Module):
        problems.append(f"model.type: {cfg['model']['type']} built a {type(model).__name__}, not a torch.nn.Module")
        return None
    return model


def _check_param_groups(cfg: dict[str, Any], model: Any, problems: list[str]) -> None:
    """Param groups as the build makes them, on the meta model: layer-wise decay on a model without layers, too
    few `num_layers`, tied parameters, ... are refused now."""
    from engine.build import optimizer_kwargs
    from engine.optim.constructors import ParamGroupError, build_param_groups

    ow = cfg["optim_wrapper"]
    try:
        build_param_groups(model, optimizer_kwargs(cfg), ow["paramwise_cfg"], ow["constructor"])
    except ParamGroupError as exc:
        problems.extend(exc.problems)  # each already names its key (constructor, num_layers, bypass_duplicate, ...)
    except (ValueError, TypeError, KeyError) as exc:
        problems.append(f"optim_wrapper.paramwise_cfg: {exc}")


def _without_dynamo(cls: type) -> type:
    """`cls` whose `add_param_group` skips torch's lazy `torch._dynamo` import (over a second of `check`'s time):
    the optimizer's own argument checks and the group checks still run, only the compile guard is left out."""
    import torch

    plain = getattr(torch.optim.Optimizer.add_param_group, "__wrapped__", None)
    if plain is None or "add_param_group" in vars(cls):
        return cls  # a torch without the lazy guard, or an optimizer with its own group logic: use it as it is
    return type(cls.__name__, (cls,), {"add_param_group": plain})


def _check_optimizer(cfg: dict[str, Any], problems: list[str], warnings: list[str]) -> bool:
    """Known optimizer and arguments, then a trial construction on one dummy tensor: torch checks the values."""
    from engine.build import default_lr

    optim = cfg["optim"]
    before = len(problems)
    cls = _check_typed({k: v for k, v in optim.items() if not (k == "lr" and v is None)}, "optim", "optimizer",
                       problems)
    if cls is None or len(problems) > before:
        return False
    import torch

    kwargs = {k: v for k, v in optim.items() if k != "type" and not (k == "lr" and v is None)}
    if optim.get("lr") is None:
        default = default_lr(cls)
        if default is None:
            problems.append(f"optim.lr: required ({cls.__name__} has no default learning rate)")
            return False
        warnings.append(f"optim.lr: not set, so {cls.__name__}'s default lr={default:g} is used; set optim.lr to "
                        f"make the choice explicit")
    # Implementation switches depend on the device the real parameters live on, not on a CPU dummy.
    trial = {k: v for k, v in kwargs.items() if k not in _DEVICE_FLAGS}
    try:
        _without_dynamo(cls)([torch.zeros(1, requires_grad=True)], **trial)
    except (ValueError, TypeError, IndexError, KeyError, RuntimeError) as exc:
        text = str(exc)
        named = [k for k in trial if k in text or _TORCH_WORDS.get(k, "\0") in text.lower()]
        if len(named) == 1:
            problems.append(f"optim.{named[0]}: {cls.__name__} refuses {trial[named[0]]!r} ({text})")
        else:
            got = ", ".join(f"{k}={v!r}" for k, v in trial.items())
            problems.append(f"optim: {cls.__name__} refuses these arguments ({text}); got {got}")
        return False
    return True


# How torch's optimizer argument errors name some arguments ("Invalid learning rate: -1.0").
_TORCH_WORDS = {"lr": "learning rate", "eps": "epsilon", "betas": "beta"}
_DEVICE_FLAGS = {"fused", "foreach", "capturable", "differentiable"}


def _check_loops(cfg: dict[str, Any], problems: list[str]) -> bool:
    """The train loop's length and intervals, and every loop's extra keys against its class; True when all fine."""
    before = len(problems)
    train = cfg["train_cfg"]
    by_epoch = train["type"] == "EpochBasedTrainLoop"
    need, other = ("max_epochs", "max_iters") if by_epoch else ("max_iters", "max_epochs")
    if train.get(need) is None:
        problems.append(f"train_cfg.{need}: required by {train['type']}")
    elif train[need] < 1:
        problems.append(f"train_cfg.{need}: must be at least 1, got {train[need]}")
    if train.get(other) is not None:
        problems.append(f"train_cfg.{other}: not used by {train['type']} (set train_cfg.{need} instead)")
    for name in ("val_interval", "val_begin", "max_nonfinite_skips"):
        if train[name] < 1:
            problems.append(f"train_cfg.{name}: must be at least 1, got {train[name]}")
    # Extra keys are the loop's keyword arguments (null ones are left out, as the runner does); the lengths were
    # checked above with clearer messages.
    kwargs = {k: v for k, v in train.items() if k != "type" and v is not None}
    problems += [p for p in kwargs_problems(resolve_type(train["type"], "train_loop"), kwargs, "train_cfg",
                                            engine_owned=_INJECTED["train_loop"])
                 if not p.startswith((f"train_cfg.{need}:", f"train_cfg.{other}:"))]
    for section, kind in (("val_cfg", "val_loop"), ("test_cfg", "test_loop")):
        node = cfg[section]
        kwargs = {k: v for k, v in node.items() if k != "type"}
        problems += kwargs_problems(resolve_type(node["type"], kind), kwargs, section, engine_owned=_INJECTED[kind])
    return len(problems) == before


def _check_default_hook_names(hooks: Any, problems: list[str], warnings: list[str]) -> None:
    """A misspelt default hook name would silently add a second hook (or, with null, remove nothing)."""
    if not isinstance(hooks, dict):
        return
    names = list(DEFAULT_HOOKS)
    for name, hook in hooks.items():
        if name in DEFAULT_HOOKS:
            continue
        close = did_you_mean(str(name), names)
        if hook is None:
            problems.append(f"default_hooks.{name}: no default hook of that name to remove{close}; default hooks "
                            f"are {', '.join(names)}")
        elif close:
            warnings.append(f"default_hooks.{name}: not a default hook name, so this adds another hook{close}")


def _check_hooks(cfg: dict[str, Any], problems: list[str]) -> None:
    from engine.hooks.hook import priority_problem

    entries = [(f"default_hooks.{name}", hook) for name, hook in cfg["default_hooks"].items()]
    if not isinstance(cfg["custom_hooks"], list):
        problems.append("custom_hooks: must be a list of hook configs")
    else:
        entries += [(f"custom_hooks.{i}", hook) for i, hook in enumerate(cfg["custom_hooks"])]
    for path, hook in entries:
        before = len(problems)
        cls = _check_typed(hook, path, "hook", problems, extra=("priority",))
        if cls is not None and _checkpoint_hook_problems(cls, hook, path, problems) and len(problems) == before:
            _try_hook(cls, hook, path, problems)
        if isinstance(hook, dict) and "priority" in hook:
            problem = priority_problem(hook["priority"])
            if problem:
                problems.append(f"{path}.priority: {problem}")
        iter_loop = isinstance(cfg.get("train_cfg"), dict) and cfg["train_cfg"].get("type") == "IterBasedTrainLoop"
        epoch_ckpt = isinstance(hook, dict) and hook.get("type") == "CheckpointHook" and hook.get("by_epoch") is True
        if epoch_ckpt and iter_loop:
            # An iteration loop has no epoch boundaries to save at: such a hook would never write a checkpoint.
            problems.append(f"{path}.by_epoch: true never saves in an IterBasedTrainLoop; remove it (checkpoints "
                            f"follow the loop's kind) or set by_epoch: false")


def _checkpoint_hook_problems(cls: type, hook: dict[str, Any], path: str, problems: list[str]) -> bool:
    """Every CheckpointHook argument it would refuse, one line each (its constructor stops at the first); arguments
    the signature check already reported are not repeated. False when any was found (no trial build then)."""
    from engine.hooks.checkpoint_hook import CheckpointHook, argument_problems

    if cls is not CheckpointHook:
        return True
    kwargs = {k: v for k, v in hook.items() if k not in ("type", "priority")}
    reported = {p.split(":", 1)[0] for p in problems}
    found = [refusal(cls, {arg: kwargs.get(arg)}, path, ValueError(why)) for arg, why in argument_problems(kwargs)
             if f"{path}.{arg}" not in reported]
    problems.extend(dict.fromkeys(found))
    return not found


def _try_hook(cls: type, hook: dict[str, Any], path: str, problems: list[str]) -> None:
    """Construct the hook as the build will (hook constructors are cheap): what it refuses is refused here, with the
    key path, instead of as a traceback once training starts."""
    from engine.hooks.hook import handled_events

    kwargs = {k: v for k, v in hook.items() if k not in ("type", "priority")}
    try:
        instance = cls(**kwargs)
    except REFUSALS as exc:
        problems.append(refusal(cls, kwargs, path, exc))
        return
    try:
        # What registration refuses (a misnamed event method, a signature the event cannot call), refused here.
        handled_events(instance)
    except TypeError as exc:
        problems.append(f"{path}.type: {exc}")
