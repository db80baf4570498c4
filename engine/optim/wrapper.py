"""OptimWrapper / AmpOptimWrapper: the single optimizer call of the loop, on top of Accelerate.

Accelerate does the mechanics (gradient accumulation, DDP no-sync on micro-batches, GradScaler, unscale-before-clip);
the wrapper adds MMEngine's surface: `update_params(loss)`, clipping config, lr/momentum views, grad-norm and
skipped-step bookkeeping, and the param-group view the schedulers act on.

Per step it takes from Accelerate only what the configuration needs. Without a loss scaler (and outside
XLA/DeepSpeed/Megatron/FSDP) AcceleratedOptimizer.step adds nothing to `optimizer.step()` but two uncached
`is_lomo_available()` probes (a `sys.path` walk each), and its `zero_grad` re-reads the optimizer's signature: the
wrapper then calls the torch optimizer itself. With `accumulative_counts: 1` (and no scaler) `accelerator.backward`
only divides by 1 and `accumulate` only sets `sync_gradients` to True: the wrapper calls `loss.backward()` and
enters no context. Everything else (fp16 GradScaler, accumulation with DDP no-sync) still goes through Accelerate.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.utils import get_total_norm
from torch.utils._foreach_utils import _device_has_foreach_support

from engine.optim.param_groups_base import GROUP_DATA_KEYS as _GROUP_DATA_KEYS

_PLAIN = {torch.Tensor}  # gradients of these types take get_total_norm's foreach path


class SchedulerView:
    """What schedulers mutate: the optimizer's groups plus, when they are not all the base, a pseudo group for it.

    MMEngine appends `base_param_settings` so the base lr is scheduled (and logged) even when every real group
    carries a multiplier; the dicts are shared, so a scheduler writing a group writes the optimizer's group.
    The list is rebuilt on every access: `optimizer.load_state_dict` (resume) replaces the group dicts, and a view
    holding the old ones would leave the resumed optimizer's lr unscheduled.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.base_group: dict[str, Any] | None = None
        # MMEngine's test is "more than one group", which there means "param-wise rules were applied" (it makes one
        # group per parameter). Ours merge equal settings, so one group may still carry a multiplier (a custom key
        # every name matches): the test is whether any group differs from the optimizer's defaults.
        if len(optimizer.param_groups) > 1 or any(_differs(g, optimizer.defaults) for g in optimizer.param_groups):
            self.base_group = {k: v for k, v in optimizer.defaults.items()}
            self.base_group["params"] = []

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        groups = list(self.optimizer.param_groups)
        if self.base_group is not None:
            groups.append(self.base_group)
        return groups


class OptimWrapper:
    """Steps the optimizer once per `accumulative_counts` micro-batches, with optional gradient clipping."""

    def __init__(self, accelerator: Any, optimizer: torch.optim.Optimizer, *, accumulative_counts: int = 1,
                 clip_grad: dict[str, Any] | None = None, static_loss_scale: float | None = None) -> None:
        self.accelerator = accelerator
        self.optimizer = optimizer
        self.accumulative_counts = accumulative_counts
        self.clip_grad = dict(clip_grad) if clip_grad else None
        self.static_loss_scale = static_loss_scale
        # The total gradient norm of the last step, a 0-dim tensor on the gradients' device (read on the host only
        # when logged, so measuring it is no device sync); NaN before the first step.
        self.grad_norm: torch.Tensor | float = math.nan
        self.step_was_skipped = False
        self.skipped_steps = 0
        # A 0-dim float tensor: 1.0 makes the next step a no-op inside an optimizer that supports it (`found_inf`,
        # as GradScaler hands it to fused optimizers), so a non-finite loss is kept out without a device sync.
        self.found_inf: torch.Tensor | None = None
        self.view = SchedulerView(optimizer)
        self._direct, self._plain_backward = _fast_paths(accelerator, optimizer, accumulative_counts)
        # Whether every parameter shares one device and dtype (so do their gradients): the grad norm is then one
        # foreach norm and one vector norm (what get_total_norm computes for a single group, without its grouping,
        # no-grad contexts and per-tensor device moves).
        kinds = {(p.device, p.dtype) for g in optimizer.param_groups for p in g["params"]}
        self._one_group = len(kinds) == 1 and _device_has_foreach_support(next(iter(kinds))[0])

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    def begin_window(self, size: int) -> None:
        """Start an iteration of `size` micro-batches (at most `accumulative_counts`; fewer at the end of an epoch).

        Accelerate steps when its micro-batch counter reaches a multiple of the count; starting the counter at
        `count - size` makes that the window's last micro-batch, also for a short window. (Accelerate's own
        end-of-dataloader rule cannot be used: the loop fetches a window's batches before running them, so the
        flag is already set while the window's first micro-batches run, which would step on each of them.)
        """
        if not 1 <= size <= self.accumulative_counts:
            raise ValueError(f"a window holds 1 to {self.accumulative_counts} micro-batches, got {size}")
        self.accelerator.step = self.accumulative_counts - size

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Forward+backward of one micro-batch: DDP skips the gradient all-reduce except on the last one."""
        if self._plain_backward:  # one micro-batch a step: every backward syncs, there is nothing to skip
            yield
            return
        with self.accelerator.accumulate(model):
            yield

    @property
    def plain_step(self) -> bool:
        """Whether a micro-batch needs no context at all (`optim_context` would enter nothing): the loop then skips
        entering it."""
        return self._plain_backward

    @property
    def takes_found_inf(self) -> bool:
        """Whether `found_inf` can skip the next step on the device: a torch optimizer that honours it (fused
        Adam/AdamW/SGD/Adagrad) called directly, with its state already made by a first step (a first step that
        is skipped this way leaves fused SGD's momentum buffers uninitialised)."""
        inner = self._direct
        return (inner is not None and getattr(inner, "_step_supports_amp_scaling", False)
                and bool(inner.state))

    def update_params(self, loss: torch.Tensor) -> bool:
        """Backward one micro-batch; on the window's last micro-batch clip, step and zero. Returns True if it stepped.

        Accelerate divides the loss by `accumulative_counts`, so the applied gradient is the window's mean.
        """
        if self._plain_backward:
            loss.backward()
        else:
            self.accelerator.backward(loss)
            if not self.accelerator.sync_gradients:
                return False
        self.grad_norm = self._clip_and_measure()
        inner = self._direct
        if inner is not None:
            if self.found_inf is not None:
                inner.found_inf = self.found_inf  # read by the fused kernel: 1.0 leaves params and state as they are
                try:
                    inner.step()
                finally:
                    del inner.found_inf
            else:
                inner.step()
            inner.zero_grad(set_to_none=True)
            self.step_was_skipped = False
            return True
        self.optimizer.step()
        # AcceleratedOptimizer reports fp16 overflow: the scaler skipped optimizer.step() for this window.
        self.step_was_skipped = bool(getattr(self.optimizer, "step_was_skipped", False))
        self.skipped_steps += self.step_was_skipped
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and self.static_loss_scale is not None:
            scaler.update(self.static_loss_scale)  # a fixed scale: undo the dynamic growth/backoff, as MMEngine does
        self.optimizer.zero_grad(set_to_none=True)
        return True

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]

    def _clip_and_measure(self) -> torch.Tensor | float:
        clip = self.clip_grad
        if clip is None and self._direct is not None:
            # Measure only: clip_grad_norm_(inf) would also multiply every gradient by 1.0 (a full pass). The norm
            # is the one clip_grad_norm_ computes (get_total_norm), on gradients no scaler has scaled (no scaler
            # on this path).
            groups = self._direct.param_groups
            grads = [g for group in groups for p in group["params"] if (g := p.grad) is not None]
            if not grads:
                return 0.0
            if self._one_group and set(map(type, grads)) == _PLAIN:
                # get_total_norm's own ops for one (device, dtype) group of plain tensors: the same bits.
                return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
            return get_total_norm(grads)
        params = self._params()
        if not params:
            return 0.0
        clip = clip or {}
        if clip.get("type", "norm") == "norm" and "max_norm" in clip:
            norm = self.accelerator.clip_grad_norm_(params, clip["max_norm"], norm_type=clip.get("norm_type", 2))
        else:
            # Always measure the norm (before any clipping); an infinite max_norm makes clip_grad_norm_ a pure
            # measurement that still unscales fp16 gradients first.
            norm = self.accelerator.clip_grad_norm_(params, math.inf, norm_type=clip.get("norm_type", 2))
            if clip.get("type") == "value":
                self.accelerator.clip_grad_value_(params, clip["clip_value"])
        return norm.detach() if isinstance(norm, torch.Tensor) else float(norm)

    def get_lr(self) -> dict[str, float]:
        """`lr` = the base lr (`optim.lr` as scheduled), then `lr/<group>` per real group when a group differs from
        the base (several groups, or one that carries a multiplier)."""
        groups = self.optimizer.param_groups
        base = self.view.base_group if self.view.base_group is not None else groups[0]
        out = {"lr": float(base["lr"])}
        if self.view.base_group is not None:
            out.update({f"lr/{group_name(g, i)}": float(g["lr"]) for i, g in enumerate(groups)})
        return out

    def get_momentum(self) -> float | None:
        """Momentum of the base group: `momentum`, else Adam's `betas[0]`, else None."""
        base = self.view.base_group if self.view.base_group is not None else self.optimizer.param_groups[0]
        if "momentum" in base:
            return float(base["momentum"])
        if "betas" in base:
            return float(base["betas"][0])
        return None

    def state_dict(self) -> dict[str, Any]:
        state = {"optimizer": self.optimizer.state_dict(), "skipped_steps": self.skipped_steps}
        if self.view.base_group is not None:
            state["base_param_settings"] = {k: v for k, v in self.view.base_group.items() if k != "params"}
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None:
            state["loss_scaler"] = scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.skipped_steps = int(state.get("skipped_steps", 0))
        if self.view.base_group is not None and "base_param_settings" in state:
            self.view.base_group.update(state["base_param_settings"])
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and "loss_scaler" in state:
            scaler.load_state_dict(state["loss_scaler"])


class AmpOptimWrapper(OptimWrapper):
    """Mixed precision: the Accelerator is built with bf16/fp16 autocast (and a GradScaler for fp16)."""


def _fast_paths(accelerator: Any, optimizer: Any, accumulative_counts: int) -> tuple[Any, bool]:
    """(the torch optimizer to step directly or None, whether `loss.backward()` replaces accelerator.backward).

    Decided once: nothing they depend on changes during a run.
    """
    inner = getattr(optimizer, "optimizer", None)
    if accelerator is None or inner is None or getattr(accelerator, "scaler", None) is not None:
        return None, False
    from accelerate.utils import DistributedType, is_lomo_available

    if accelerator.distributed_type in (DistributedType.XLA, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM,
                                        DistributedType.FSDP):
        return None, False
    plain_backward = accumulative_counts == 1 and accelerator.gradient_accumulation_steps == 1
    if is_lomo_available():
        from lomo_optim import AdaLomo, Lomo

        if isinstance(inner, (Lomo, AdaLomo)):  # their step is a no-op for Accelerate: keep its wrapper
            return None, False
    if "set_to_none" not in inspect.signature(inner.zero_grad).parameters:
        return None, False
    return inner, plain_backward


def _differs(group: dict[str, Any], defaults: dict[str, Any]) -> bool:
    """Whether a param group has a setting the optimizer's defaults lack or hold with another value."""
    return any(k not in defaults or bool(defaults[k] != v) for k, v in group.items() if k not in _GROUP_DATA_KEYS)


def group_name(group: dict[str, Any], index: int) -> str:
    """A stable display name for a param group: its `group_name` if the constructor set one, else its index."""
    return str(group.get("group_name", index))


WRAPPERS: dict[str, type] = {"OptimWrapper": OptimWrapper, "AmpOptimWrapper": AmpOptimWrapper}
