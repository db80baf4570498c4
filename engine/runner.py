"""The Runner: holds the built parts, runs the loops, fires hook events, saves and resumes checkpoints."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint import (
    POINTER,
    CheckpointWriter,
    rng_state,
    safetensors_weights,
    save_checkpoint,
    set_rng_state,
)
from engine.config import flatten
from engine.config.schema import training_hash, training_identity
from engine.errors import UserError
from engine.events import EVENT_NAMES
from engine.hooks.hook import Hook, get_priority, handled_events

logger = logging.getLogger("trainline")


class Runner:
    """Holds the built parts (engine.build makes them) and fires hook events around the loops.

    Public surface for hooks: `cfg`, `mode`, `model`, `evaluator`, `optim_wrapper`, `accelerator`, `schedulers`,
    `train_loop`, `val_loop`, `test_loop`, `work_dir`, `logger`, `iter`, `epoch`, `max_iters`, `params_hash`,
    `log_scalars`, `log_artifact`, `headline`, `save_checkpoint`, `last_checkpoint`, `mlflow_run_id`,
    `is_main_process`."""

    def __init__(self, cfg: dict[str, Any], work_root: Path, *, mode: str, accelerator: Any, model: Any,
                 evaluator: Any, optim_wrapper: Any = None, schedulers: list[Any] | None = None,
                 train_loop: Any = None, val_loop: Any = None, test_loop: Any = None,
                 hooks: list[tuple[Hook, int | str | None]] = ()) -> None:  # type: ignore[assignment]
        self.cfg = cfg
        self.mode = mode
        self.logger = logger
        self.params_hash = training_hash(cfg)
        # Checkpoints of different params never mix: each params hash has its own directory.
        self.work_dir = Path(work_root) / self.params_hash
        self.last_checkpoint: Path | None = None
        self.checkpoint_writer = CheckpointWriter()  # background saves (CheckpointHook's `background`)
        self.mlflow_run_id: str | None = None  # set by the MLflow hook (train) or by the eval stage (test)
        self.trained_iters = 0  # test mode: iterations the tested weights were trained for (the metrics' step)
        self.history: list[dict[str, Any]] = []
        self._sinks: list[Callable[[dict[str, float], int], None]] = []
        self._artifact_sinks: list[Callable[[Path, str], None]] = []
        self._hooks: list[tuple[int, Hook]] = []
        self._by_event: dict[str, list[Hook]] = {e: [] for e in EVENT_NAMES}
        self._events: dict[int, set[str]] = {}
        self.accelerator = accelerator
        self.model = model
        self.evaluator = evaluator
        self.optim_wrapper = optim_wrapper
        self.schedulers = list(schedulers or [])
        self.train_loop, self.val_loop, self.test_loop = train_loop, val_loop, test_loop
        for loop in (train_loop, val_loop, test_loop):
            if loop is not None:
                loop.attach(self)
        for hook, priority in hooks:
            self.register_hook(hook, priority)

    # -- hooks ---------------------------------------------------------------------------------------------------
    def register_hook(self, hook: Hook, priority: int | str | None = None) -> None:
        """Insert `hook` by priority (lower first; ties keep registration order). Misnamed methods raise here."""
        events = set(handled_events(hook))
        # A plain class that does not subclass Hook has no `priority`: NORMAL, MMEngine's default.
        prio = get_priority(priority if priority is not None else getattr(hook, "priority", "NORMAL"))
        hook.priority = prio
        index = len(self._hooks)
        while index > 0 and self._hooks[index - 1][0] > prio:
            index -= 1
        self._hooks.insert(index, (prio, hook))
        self._events[id(hook)] = events
        self._by_event = {e: [h for _, h in self._hooks if e in self._events[id(h)]] for e in EVENT_NAMES}

    @property
    def hooks(self) -> list[Hook]:
        return [h for _, h in self._hooks]

    def call_hook(self, event: str, **kwargs: Any) -> None:
        for hook in self._by_event[event]:
            getattr(hook, event)(self, **kwargs)

    def hook_order(self) -> str:
        """The per-event hook order table (logged at start-up)."""
        lines = []
        for event in EVENT_NAMES:
            if self._by_event[event]:
                names = ", ".join(f"{type(h).__name__}({h.priority})" for h in self._by_event[event])
                lines.append(f"{event:<24} {names}")
        return "\n".join(lines)

    # -- state ---------------------------------------------------------------------------------------------------
    @property
    def iter(self) -> int:
        return self.train_loop.iter if self.train_loop else 0

    @property
    def epoch(self) -> int:
        return self.train_loop.epoch if self.train_loop else 0

    @property
    def max_iters(self) -> int:
        return self.train_loop.max_iters if self.train_loop else 0

    @property
    def is_main_process(self) -> bool:
        return self.accelerator.is_main_process

    def run_tags(self) -> dict[str, str]:
        """Tags describing this training (the tracking hook adds code and environment tags)."""
        from engine.tracking import data_hash

        return {
            "params_hash": self.params_hash,
            "data_hash": data_hash(Path(self.cfg["data"]["root"])),
            "world_size": str(self.accelerator.num_processes),
            "device": str(self.accelerator.device),
            "precision": str(self.accelerator.mixed_precision),
        }

    def add_scalar_sink(self, sink: Callable[[dict[str, float], int], None]) -> None:
        """Receive every `log_scalars` call (the MLflow hook subscribes here)."""
        self._sinks.append(sink)

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        """Publish scalars for `step` (= iteration count) to the history and every sink."""
        self.history.append({"step": int(step), **scalars})
        for sink in self._sinks:
            sink(scalars, int(step))

    def add_artifact_sink(self, sink: Callable[[Path, str], None]) -> None:
        """Receive every `log_artifact` call (the MLflow hook subscribes here)."""
        self._artifact_sinks.append(sink)

    def log_artifact(self, path: Path, artifact_path: str) -> None:
        """Publish a file (or directory) a hook has written, to be kept with the run under `artifact_path`. The
        file must stay as it is until delivered (sinks may send it later): write a new name rather than rewrite.
        Without a sink (no tracking) this does nothing; the file stays where it was written."""
        for sink in self._artifact_sinks:
            sink(Path(path), artifact_path)

    def headline(self, metrics: dict[str, float]) -> dict[str, float]:
        """The headline metrics among `metrics`: `eval.headline`, else the evaluator's `headline` attribute, else
        every metric without a dot in its name (dotted ones, like `IoU.circle`, are per-class details)."""
        chosen = self.cfg["eval"]["headline"] or getattr(self.evaluator, "headline", None)
        if not chosen:
            return {k: v for k, v in metrics.items() if "." not in k and isinstance(v, (int, float))}
        missing = [k for k in chosen if k not in metrics]
        if missing:
            source = "eval.headline" if self.cfg["eval"]["headline"] else f"{type(self.evaluator).__name__}.headline"
            raise UserError(f"{source}: the evaluator reported no {', '.join(map(repr, missing))}; it reports "
                            f"{', '.join(sorted(metrics)) or 'nothing'}")
        return {k: metrics[k] for k in chosen}

    # -- running -------------------------------------------------------------------------------------------------
    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """Fire `on_exception` when the run fails or is interrupted (the error itself propagates unchanged)."""
        try:
            yield
        except BaseException as exc:
            self.call_hook("on_exception", exc=exc)
            raise

    def train(self) -> dict[str, float]:
        """Run training (resuming from this params' last checkpoint if one exists); returns the last val metrics."""
        self.logger.info("hook order:\n%s", self.hook_order())
        with self._guarded():
            self.call_hook("before_run")
            self._resume_if_possible()
            self.train_loop.run()
            self.call_hook("after_run")
        return self.last_val_metrics()

    def test(self, weights: Path) -> dict[str, float]:
        """Load `weights` (safetensors) and run the test loop."""
        from safetensors.torch import load_file

        from engine.weights import load_weights

        if not weights.is_file():
            raise UserError(f"{weights}: trained weights not found; run the train stage first (dvc repro train)")
        load_weights(self.accelerator.unwrap_model(self.model), load_file(str(weights)), source=str(weights),
                     cause="model.* differs from what these weights were trained with; rerun the train stage "
                           "(dvc repro train)")
        with self._guarded():
            self.call_hook("before_run")
            metrics = self.test_loop.run()
            self.call_hook("after_run")
        return metrics

    def last_val_metrics(self) -> dict[str, float]:
        for record in reversed(self.history):
            if any(k.startswith("val/") for k in record):
                return {k: v for k, v in record.items() if k.startswith("val/")}
        return {}

    def model_weights(self) -> dict[str, torch.Tensor]:
        return self.accelerator.unwrap_model(self.model).state_dict()

    def save_weights(self, path: Path) -> None:
        """Final weights as safetensors (main process; written to a temp file then renamed)."""
        from safetensors.torch import save_file

        if self.is_main_process:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            save_file(safetensors_weights(self.model_weights()), str(tmp))
            tmp.replace(path)
        self.accelerator.wait_for_everyone()

    def save_checkpoint(self, name: str, *, save_optimizer: bool = True, save_param_scheduler: bool = True,
                        pointer: str = POINTER, background: bool = False) -> Path:
        """Everything needed to continue exactly; hooks may extend it in `before_save_checkpoint`.

        Without `save_optimizer` / `save_param_scheduler` those states are left out (a resume then starts the
        optimizer afresh / fast-forwards the schedulers, with a warning). `pointer` is the file naming the newest
        checkpoint of its kind: only `last_checkpoint` (the default) is what a resume continues from and what
        `last_checkpoint` here names; best checkpoints keep their own. `background`: snapshot the state now and
        write it on `checkpoint_writer`'s thread (engine.checkpoint)."""
        self.train_loop.settle()  # nothing is saved after a non-finite loss the device has flagged
        loop = self.train_loop.state_dict()
        state: dict[str, Any] = {}
        if save_optimizer:
            state["optim_wrapper"] = self.optim_wrapper.state_dict()
        if save_param_scheduler:
            state["schedulers"] = [s.state_dict() for s in self.schedulers]
        state.update({
            "loop": loop,
            "rng": rng_state(),
            "hooks": {f"{i}:{type(h).__name__}": h.state_dict() for i, h in enumerate(self.hooks)},
            "history": self.history,
        })
        # Completed iterations/epochs (what a resume continues from), not the 0-based index of the running one.
        meta = {"params_hash": self.params_hash, "iter": loop["iter"], "epoch": loop["epoch"],
                "params": flatten(training_identity(self.cfg))}
        checkpoint = {"meta": meta, "state": state}
        self.call_hook("before_save_checkpoint", checkpoint=checkpoint)
        path = self.work_dir / name
        if self.is_main_process:
            path = save_checkpoint(self.work_dir, name, self.model_weights(), checkpoint["state"], checkpoint["meta"],
                                   pointer=pointer, writer=self.checkpoint_writer, background=background)
        self.accelerator.wait_for_everyone()
        if pointer == POINTER:
            self.last_checkpoint = path
        return path

    def _resume_if_possible(self) -> None:
        """`resume` (auto: the newest intact checkpoint of these params; a path: exactly that one), else `load_from`."""
        from engine.resume import find_resumable, load_explicit, params_difference

        setting = self.cfg["resume"]
        if setting is False:
            loaded = None
        elif setting in (True, "auto"):
            loaded = find_resumable(self.work_dir)
        else:
            loaded = load_explicit(Path(setting))
            if loaded.meta.get("params_hash") != self.params_hash:
                saved = loaded.meta.get("params")
                what = (params_difference(saved, flatten(training_identity(self.cfg))) if isinstance(saved, dict)
                        else f"params hash {loaded.meta.get('params_hash')}, now {self.params_hash}")
                raise UserError(f"resume: {setting} was trained with other params ({what}); resume it with those "
                                f"params, or use load_from: {setting} to start from its weights")
        if loaded is not None and loaded.meta.get("params_hash") != self.params_hash:
            self.logger.info("not resuming from %s: it was trained with other params (hash %s, now %s)",
                             loaded.path, loaded.meta.get("params_hash"), self.params_hash)
            loaded = None
        if loaded is None:
            self._load_initial_weights()
            return
        from engine.weights import load_weights

        load_weights(self.accelerator.unwrap_model(self.model), loaded.weights, source=str(loaded.path),
                     cause="the checkpoint's model differs from model.*")
        state = loaded.state
        self._restore_optimization(state, loaded.path)
        self.train_loop.load_state_dict(state["loop"])
        # Hook states go back by class, in order, so a hook registered in only one of the two runs (a programmatic
        # one, at any priority) does not shift the others' states onto the wrong hooks.
        saved_hooks: dict[str, list[dict[str, Any]]] = {}
        for key, hook_state in state["hooks"].items():
            saved_hooks.setdefault(key.split(":", 1)[1], []).append(hook_state)
        for hook in self.hooks:
            queue = saved_hooks.get(type(hook).__name__)
            if queue:
                hook.load_state_dict(queue.pop(0))
        self.history = list(state["history"])
        set_rng_state(state["rng"])
        self.last_checkpoint = loaded.path
        self.call_hook("after_load_checkpoint", checkpoint={"meta": loaded.meta, "state": state})
        self.logger.info("resumed from %s at iteration %d", loaded.path, self.iter)

    def _restore_optimization(self, state: dict[str, Any], path: Path) -> None:
        """The optimizer and scheduler states; a checkpoint saved without them (CheckpointHook `save_optimizer` /
        `save_param_scheduler: false`, or a best checkpoint) continues with a one-line warning: a fresh optimizer
        state, schedulers stepped from their start to the checkpoint's position (which also puts the learning rate
        where the schedule has it)."""
        from engine.resume import fast_forward_schedulers

        missing = [k for k in ("optim_wrapper", "schedulers") if k not in state]
        if missing:
            loop = state["loop"]
            per_epoch = getattr(self.train_loop, "iters_per_epoch", None) if self.train_loop.by_epoch else None
            # Skipped optimizer steps (NaN/inf losses, fp16 overflows) did not advance the schedules.
            skipped = state["optim_wrapper"].get("skipped_steps", 0) if "optim_wrapper" in state else loop.get(
                "nonfinite_skips", 0)
            fast_forward_schedulers(self.schedulers, int(loop["iter"]), per_epoch, int(skipped))
            parts = []
            if "optim_wrapper" in missing:
                parts.append("without the optimizer state, so the optimizer starts fresh (momentum, moments, loss "
                             "scale)")
            if "schedulers" in missing and self.schedulers:
                parts.append(f"without the scheduler states, so the schedulers were fast-forwarded to iteration "
                             f"{loop['iter']}")
            if parts:
                self.logger.warning("%s was saved %s", path, " and ".join(parts))
        if "schedulers" in state:
            for scheduler, sched_state in zip(self.schedulers, state["schedulers"], strict=True):
                scheduler.load_state_dict(sched_state)
        if "optim_wrapper" in state:
            self.optim_wrapper.load_state_dict(state["optim_wrapper"])

    def _load_initial_weights(self) -> None:
        """`load_from`: weights only (a .safetensors file or a checkpoint directory), for fine-tuning."""
        source = self.cfg["load_from"]
        if source is None:
            return
        from safetensors.torch import load_file

        from engine.weights import load_weights

        path = Path(source)
        file = path / "model.safetensors" if path.is_dir() else path
        if not file.is_file():
            raise UserError(f"load_from: {file} not found; give a .safetensors file or a checkpoint directory")
        try:
            weights = load_file(str(file))
        except Exception as exc:  # noqa: BLE001 - a damaged file is the user's to replace, not a traceback
            raise UserError(f"load_from: {file} is not readable safetensors ({exc})") from None
        load_weights(self.accelerator.unwrap_model(self.model), weights, source=f"load_from: {file}",
                     strict=self.cfg["load_strict"],
                     cause="load_from names weights of another architecture; set load_strict: false to load the "
                           "tensors that fit")
        self.logger.info("initial weights from %s", file)
