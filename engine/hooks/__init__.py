"""Built-in hooks by short name (the `type:` names of default_hooks / custom_hooks)."""

from engine.hooks.checkpoint_hook import CheckpointHook
from engine.hooks.early_stopping_hook import EarlyStoppingHook
from engine.hooks.ema_hook import EMAHook
from engine.hooks.empty_cache_hook import EmptyCacheHook
from engine.hooks.hook import Hook, Priority
from engine.hooks.logger_hook import LoggerHook
from engine.hooks.mlflow_logger_hook import MLflowLoggerHook
from engine.hooks.param_scheduler_hook import ParamSchedulerHook
from engine.hooks.sampler_seed_hook import DistSamplerSeedHook
from engine.hooks.sync_buffers_hook import SyncBuffersHook

HOOKS: dict[str, type[Hook]] = {
    cls.__name__: cls
    for cls in (LoggerHook, ParamSchedulerHook, CheckpointHook, DistSamplerSeedHook, MLflowLoggerHook,
                EMAHook, EmptyCacheHook, EarlyStoppingHook, SyncBuffersHook)
}

__all__ = ["HOOKS", "Hook", "Priority"]
