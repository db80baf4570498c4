"""CheckpointHook: save every `interval` steps from `save_begin` and at the end, keep the newest few, keep the best
checkpoint of each `save_best` metric, and publish the final weights."""

from __future__ import annotations

import hashlib
import inspect
import math
import re
import shutil
from pathlib import Path
from typing import Any

from engine.checkpoint import BEST_POINTER, BEST_PREFIX, PUBLISHED, atomic_write_bytes, safetensors_weights
from engine.errors import UserError
from engine.hooks.early_stopping_hook import GREATER_KEYS, LESS_KEYS, infer_rule
from engine.hooks.hook import Hook, Priority

# The key runtime errors name: CheckpointHook is the `checkpoint` default hook.
KEY_PATH = "default_hooks.checkpoint"
RULES = ("greater", "less")
# What a published .safetensors file can hold of MMEngine's checkpoint keys: the weights and a metadata header.
PUBLISHABLE = ("meta", "state_dict")


class CheckpointHook(Hook):
    """MMEngine's CheckpointHook on atomic checkpoint directories. Runs last (VERY_LOW), so a checkpoint holds the
    post-step scheduler and hook states.

    - Interval checkpoints: after step `s` (1-based iteration or epoch, per `by_epoch`, which follows the loop's kind
      when unset) when `s >= save_begin` and `(s - save_begin) % interval == 0`; with `save_last` also after the last
      one. Named `filename_tmpl.format(s)` (`iter_{}` / `epoch_{}`); `max_keep_ckpts` keeps the newest of these.
    - `save_best`: after each validation, a score better than the best so far (`rule`, else inferred from the name
      with `greater_keys` / `less_keys`) writes `best_<metric>_<iter|epoch>_<n>` without optimizer and scheduler
      state (as MMEngine), points `best_checkpoint` (several metrics: `best_checkpoint_<metric>`) at it, and only
      then removes that metric's previous best. `last_checkpoint` and `max_keep_ckpts` never see best checkpoints.
      Unlike MMEngine's message hub, the best scores are this hook's checkpointed state, so they survive a resume.
    - `publish` (or MMEngine's `published_keys`): at the end of training the final weights (the EMA ones under an
      EMAHook, as `models/model.safetensors`) go to `published/<name>-<first 8 hex of their sha256>.safetensors`;
      with `meta` in `published_keys` the file's metadata header records the params hash and position.
    - `background`: interval checkpoints before the last are snapshotted to host memory at their iteration and
      written by a writer thread while training goes on (the same atomic write; one in flight at most, a later save
      waits for it). The last one, a requested stop's and best checkpoints are written in place; the end of training
      waits for the writer, and a failed background write stops training at the next iteration with its error.
    """

    priority = Priority.VERY_LOW

    def __init__(self, interval: int = 1, by_epoch: bool | None = None, save_optimizer: bool = True,
                 save_param_scheduler: bool = True, max_keep_ckpts: int = -1, save_last: bool = True,
                 save_best: str | list[str] | None = None, rule: str | list[str] | None = None,
                 greater_keys: str | list[str] | None = None, less_keys: str | list[str] | None = None,
                 filename_tmpl: str | None = None, save_begin: int = 0, publish: bool = False,
                 published_keys: str | list[str] | None = None, background: bool = False) -> None:
        args = {k: v for k, v in locals().items() if k != "self"}
        problems = _problems(args)
        if problems:
            raise ValueError(problems[0][1])
        self.interval = interval
        self.by_epoch = by_epoch  # None: follow the train loop's kind
        self.save_optimizer = save_optimizer
        self.save_param_scheduler = save_param_scheduler
        self.max_keep_ckpts = max_keep_ckpts
        self.save_last = save_last
        self.filename_tmpl = filename_tmpl  # None: iter_{} or epoch_{}, by the kind in use
        self.save_begin = save_begin
        self.background = background
        self.greater_keys = _as_list(greater_keys) if greater_keys is not None else list(GREATER_KEYS)
        self.less_keys = _as_list(less_keys) if less_keys is not None else list(LESS_KEYS)
        names = _as_list(save_best) if save_best is not None else []
        self._auto = names == ["auto"]
        given = _as_list(rule) if rule is not None else [None]
        self._given_rules: list[str | None] = given * len(names) if len(given) == 1 else list(given)
        # The metrics kept and their rules; `auto` is resolved at the first validation.
        self.metrics: list[str] | None = None if self._auto else names
        self.rules: dict[str, str] = {}
        if not self._auto:  # the arguments were checked: every rule is given or inferable
            self.rules = {k: r or str(infer_rule(k, self.greater_keys, self.less_keys))
                          for k, r in zip(names, self._given_rules, strict=True)}
        self.save_best = names
        self.published_keys = _as_list(published_keys) if published_keys is not None else list(PUBLISHABLE)
        self.publish = publish or published_keys is not None  # MMEngine publishes whenever published_keys is set
        self.kept: list[str] = []
        self.best: dict[str, dict[str, Any]] = {}  # metric -> {"score", "name", "rule"}

    # -- interval checkpoints --------------------------------------------------------------------------------------
    def _by_epoch(self, runner: Any) -> bool:
        return runner.train_loop.by_epoch if self.by_epoch is None else self.by_epoch

    def _template(self, runner: Any) -> str:
        return self.filename_tmpl or ("epoch_{}" if self._by_epoch(runner) else "iter_{}")

    def due(self, step: int) -> bool:
        """Whether the interval saves after 1-based step `step` (MMEngine's every_n_train_iters / every_n_epochs
        with `start=save_begin`)."""
        return self.interval > 0 and step >= self.save_begin and (step - self.save_begin) % self.interval == 0

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.background:
            runner.checkpoint_writer.check()  # a failed background write stops training here, with its error
        if not self._by_epoch(runner):
            step = runner.iter + 1
            if self.due(step) or (self.save_last and step == runner.max_iters):
                self._save(runner, self._template(runner).format(step), background=step < runner.max_iters)
        self._settle_if_stopping(runner)

    def after_train_epoch(self, runner: Any) -> None:
        if not self._by_epoch(runner) or not runner.train_loop.by_epoch:
            return
        epoch = runner.epoch + 1
        if self.due(epoch) or (self.save_last and epoch == runner.train_loop.max_epochs):
            self._save(runner, self._template(runner).format(epoch), background=epoch < runner.train_loop.max_epochs)
        self._settle_if_stopping(runner)

    def _settle_if_stopping(self, runner: Any) -> None:
        """A hook stopped training (early stopping, ...): this hook runs last in the event, so the write still in
        flight completes before any after_train hook (MLflow logging the checkpoints) runs."""
        if self.background and getattr(runner.train_loop, "stop_training", False):
            runner.checkpoint_writer.wait()

    def after_train(self, runner: Any) -> None:
        """Training is over: no background write may still be running after it."""
        if self.background:
            runner.checkpoint_writer.wait()

    def save_for_stop(self, runner: Any, iteration: int) -> Path:
        """The checkpoint of a requested stop (SIGTERM/SIGINT) at an iteration boundary: named by the iteration
        (with `filename_tmpl` in an iteration loop), counted in `max_keep_ckpts` like the others, and always complete
        (optimizer and schedulers included) so the resume is exact."""
        name = f"iter_{iteration}" if self._by_epoch(runner) else self._template(runner).format(iteration)
        self._save(runner, name, complete=True)
        return runner.work_dir / name

    def _save(self, runner: Any, name: str, complete: bool = False, background: bool = False) -> None:
        # Update the kept list first so the checkpoint's own hook state already names it.
        if name in self.kept:
            self.kept.remove(name)
        self.kept.append(name)
        drop: list[str] = []
        if self.max_keep_ckpts > 0:
            drop, self.kept = self.kept[:-self.max_keep_ckpts], self.kept[-self.max_keep_ckpts:]
        # A checkpoint dropped here while the new one is still being written leaves the newer kept ones: a kill
        # during that write resumes from the newest of them.
        runner.save_checkpoint(name, save_optimizer=self.save_optimizer or complete,
                               save_param_scheduler=self.save_param_scheduler or complete,
                               # passed only when used: a runner without background saves keeps working
                               **({"background": True} if self.background and background else {}))
        if runner.is_main_process:
            for old in drop:
                shutil.rmtree(runner.work_dir / old, ignore_errors=True)

    # -- best checkpoints ------------------------------------------------------------------------------------------
    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        if runner.mode == "train":
            self._settle_if_stopping(runner)
        if not self.save_best or runner.mode != "train":
            return
        metrics = metrics or {}
        kind, step = ("epoch", runner.epoch) if self._by_epoch(runner) else ("iter", runner.iter)
        for key in self._resolve(runner, metrics):
            if key not in metrics:
                raise UserError(f"{KEY_PATH}.save_best: the validation reported no {key!r}; it reports "
                                f"{', '.join(map(str, metrics)) or 'nothing'}")
            score = _score(key, metrics[key])
            best = self.best.get(key)
            if math.isnan(score) or (best is not None and not self._better(key, score, best["score"])):
                continue
            self._save_best(runner, key, score, f"{BEST_PREFIX}{_safe(key)}_{kind}_{step}")

    def _resolve(self, runner: Any, metrics: dict[str, float]) -> list[str]:
        """The metrics kept; `auto` becomes the first headline metric of the first validation."""
        if self.metrics is not None:
            return self.metrics
        headline = list(runner.headline(metrics))
        if not headline:
            raise UserError(f"{KEY_PATH}.save_best: auto keeps the first headline metric, but the validation reported "
                            f"none (it reports {', '.join(map(str, metrics)) or 'nothing'}); name the metric instead")
        key = headline[0]
        rule = self._given_rules[0] or infer_rule(key, self.greater_keys, self.less_keys)
        if rule is None:
            raise UserError(f"{KEY_PATH}.rule: cannot tell whether larger or smaller is better for {key!r} (the "
                            f"first headline metric, which save_best: auto keeps); set rule: greater or less")
        self.metrics, self.rules = [key], {key: rule}
        runner.logger.info("CheckpointHook: save_best: auto keeps the best %s (%s is better)", key,
                           "larger" if rule == "greater" else "smaller")
        return self.metrics

    def _better(self, key: str, score: float, best: float) -> bool:
        return score > best if self.rules[key] == "greater" else score < best

    def pointer(self, key: str) -> str:
        """The pointer file naming `key`'s best checkpoint: `best_checkpoint`, or `best_checkpoint_<metric>` when
        several metrics are kept."""
        return BEST_POINTER if len(self.save_best) == 1 else f"{BEST_POINTER}_{_safe(key)}"

    def _save_best(self, runner: Any, key: str, score: float, name: str) -> None:
        # Recorded first so the best checkpoint's own hook state holds its score.
        self.best[key] = {"score": score, "name": name, "rule": self.rules[key]}
        runner.save_checkpoint(name, save_optimizer=False, save_param_scheduler=False, pointer=self.pointer(key))
        if runner.is_main_process:
            # Every other best of this metric (normally the one before; after a resume that did not retrace the
            # lost run exactly, also one it left), removed once the new one and its pointer are in place.
            pattern = re.compile(rf"{re.escape(BEST_PREFIX + _safe(key))}_(iter|epoch)_\d+")
            for path in runner.work_dir.iterdir():
                if path.name != name and pattern.fullmatch(path.name) and path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
        runner.logger.info("CheckpointHook: best %s %.4g: saved %s", key, score, name)

    # -- publishing --------------------------------------------------------------------------------------------------
    def after_run(self, runner: Any) -> None:
        """After every after_train (EMAHook's swap-in included, whatever its priority): the weights the train stage
        exports."""
        if not self.publish or runner.mode != "train" or not runner.is_main_process:
            return
        from safetensors.torch import save

        step = runner.epoch if self._by_epoch(runner) else runner.iter
        meta = ({"params_hash": runner.params_hash, "iter": str(runner.iter), "epoch": str(runner.epoch)}
                if "meta" in self.published_keys else None)
        data = save(safetensors_weights(runner.model_weights()), metadata=meta)
        name = f"{self._template(runner).format(step)}-{hashlib.sha256(data).hexdigest()[:8]}.safetensors"
        out = runner.work_dir / PUBLISHED / name
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, data)
        runner.logger.info("CheckpointHook: published the final weights to %s", out)

    # -- state -------------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"kept": list(self.kept), "best": {k: dict(v) for k, v in self.best.items()},
                "auto": self.metrics[0] if self._auto and self.metrics else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kept = list(state.get("kept", []))
        auto = state.get("auto")
        if self._auto and self.metrics is None and isinstance(auto, str):
            rule = self._given_rules[0] or infer_rule(auto, self.greater_keys, self.less_keys)
            if rule is not None:
                self.metrics, self.rules = [auto], {auto: rule}
        # Bests of metrics no longer kept, or kept by another rule now, are forgotten (their directories stay).
        self.best = {k: {"score": float(v["score"]), "name": str(v["name"]), "rule": str(v.get("rule"))}
                     for k, v in dict(state.get("best", {})).items()
                     if k in (self.metrics or []) and v.get("rule") == self.rules.get(k)}


def _safe(metric: str) -> str:
    """`metric` as part of a directory name (MMEngine replaces '/'; whitespace and '\\' too here)."""
    return re.sub(r"[\\/\s]", "_", metric)


def _score(key: str, value: Any) -> float:
    if isinstance(value, (str, bool)):
        raise UserError(f"{KEY_PATH}.save_best: the validation's {key!r} is {value!r}, not a number to compare")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{KEY_PATH}.save_best: the validation's {key!r} is {value!r}, not a number to "
                        f"compare") from None


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str_list(value: Any) -> bool:
    """A string or a list of strings (MMEngine takes either for its name lists)."""
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def argument_problems(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    """(argument, why) for every argument of a `CheckpointHook` config that the hook would refuse, so that check
    reports them all at once. Unknown argument names are left to the signature check."""
    params = inspect.signature(CheckpointHook).parameters
    args = {name: kwargs.get(name, param.default) for name, param in params.items()}
    return _problems(args)


def _problems(a: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []

    def bad(name: str, why: str) -> None:
        problems.append((name, why))

    if not _is_int(a["interval"]) or a["interval"] == 0 or a["interval"] < -1:
        bad("interval", f"interval must be a positive number of steps or -1 (never), got {a['interval']!r}")
    if a["by_epoch"] is not None and not isinstance(a["by_epoch"], bool):
        bad("by_epoch", f"by_epoch must be true, false or null (the train loop's kind), got {a['by_epoch']!r}")
    for name in ("save_optimizer", "save_param_scheduler", "save_last", "publish", "background"):
        if not isinstance(a[name], bool):
            bad(name, f"{name} must be true or false, got {a[name]!r}")
    if not _is_int(a["max_keep_ckpts"]):
        bad("max_keep_ckpts", f"max_keep_ckpts must be a whole number (-1: keep every one), got "
                              f"{a['max_keep_ckpts']!r}")
    if not _is_int(a["save_begin"]) or a["save_begin"] < 0:
        bad("save_begin", f"save_begin must be a whole number >= 0 (the first step an interval checkpoint may be "
                          f"saved at), got {a['save_begin']!r}")
    if a["filename_tmpl"] is not None:
        why = _template_problem(a["filename_tmpl"])
        if why:
            bad("filename_tmpl", f"filename_tmpl {why}, got {a['filename_tmpl']!r}")
    _best_problems(a, bad)
    keys = a["published_keys"]
    if keys is not None:
        if not _str_list(keys):
            bad("published_keys", f"published_keys must be a list of checkpoint keys to publish (of "
                                  f"{', '.join(PUBLISHABLE)}), got {keys!r}")
        elif [k for k in _as_list(keys) if k not in PUBLISHABLE] or "state_dict" not in _as_list(keys):
            bad("published_keys", f"published_keys must hold state_dict (the weights) and may hold meta: a published "
                                  f".safetensors file has no optimizer, scheduler or message hub state; got {keys!r}")
        elif len(set(_as_list(keys))) != len(_as_list(keys)):
            bad("published_keys", f"published_keys names a key twice: {keys!r}")
    return problems


def _template_problem(tmpl: Any) -> str | None:
    if not isinstance(tmpl, str):
        return "must be a string with one {} for the step, like 'iter_{}'"
    if tmpl.count("{") != 1 or tmpl.count("}") != 1 or "{}" not in tmpl:
        return "must contain exactly one {} (replaced by the step) and no other braces, like 'iter_{}'"
    if "/" in tmpl or "\\" in tmpl:
        return "must be a plain directory name, without path separators (checkpoints go to the work dir)"
    if tmpl.startswith("."):
        return "must not start with '.' (such names are the temporary checkpoints being written)"
    if tmpl.startswith(BEST_PREFIX):
        return f"must not start with {BEST_PREFIX!r} (the best checkpoints' names)"
    return None


def _best_problems(a: dict[str, Any], bad: Any) -> None:
    """save_best, rule, greater_keys, less_keys."""
    save_best, rule = a["save_best"], a["rule"]
    names: list[str] = []
    if save_best is not None:
        if not _str_list(save_best) or not _as_list(save_best) or not all(_as_list(save_best)):
            bad("save_best", f"save_best must be a metric name, a list of metric names, auto or null, got "
                             f"{save_best!r}")
        elif len(set(_as_list(save_best))) != len(_as_list(save_best)):
            bad("save_best", f"save_best names a metric twice: {save_best!r}")
        elif "auto" in _as_list(save_best) and _as_list(save_best) != ["auto"]:
            bad("save_best", f"save_best: auto (the first headline metric) cannot be listed with other metrics, got "
                             f"{save_best!r}")
        else:
            names = _as_list(save_best)
    keys_ok = True
    for name in ("greater_keys", "less_keys"):
        if a[name] is not None and (not _str_list(a[name]) or not all(_as_list(a[name]))):
            bad(name, f"{name} must be a list of metric-name parts (or one), got {a[name]!r}")
            keys_ok = False
    rules: list[Any] = [None]
    if rule is not None:
        if not _str_list(rule) or not _as_list(rule) or any(r not in RULES for r in _as_list(rule)):
            bad("rule", f"rule must be greater, less, a list of them (one per save_best metric) or null (inferred "
                        f"from the metric name), got {rule!r}")
            return
        if save_best is None:
            bad("rule", "rule is only used with save_best: set save_best, or remove rule")
            return
        rules = _as_list(rule)
        if names and len(rules) not in (1, len(names)):
            bad("rule", f"rule lists {len(rules)} rules for {len(names)} save_best metrics; give one rule, or one "
                        f"per metric")
            return
    if not names or names == ["auto"] or not keys_ok:
        return  # auto's metric is known at the first validation: its rule is inferred then
    greater = _as_list(a["greater_keys"]) if a["greater_keys"] is not None else GREATER_KEYS
    less = _as_list(a["less_keys"]) if a["less_keys"] is not None else LESS_KEYS
    for key, given in zip(names, rules * len(names) if len(rules) == 1 else rules, strict=True):
        if given is None and infer_rule(key, greater, less) is None:
            bad("save_best", f"save_best {key!r}: cannot tell whether larger or smaller is better (larger for names "
                             f"containing {', '.join(greater)}; smaller for {', '.join(less)}); set rule: greater or "
                             f"less")
