"""The training lifecycle: every event a hook can handle, in the order the runner fires them.

The whole run, as pseudocode (events in CAPS)::

    BEFORE_RUN
    [resume: AFTER_LOAD_CHECKPOINT]
    BEFORE_TRAIN
      BEFORE_TRAIN_EPOCH                 # once per epoch; once in total for an iteration loop
        for each iteration (= one optimizer step over accumulative_counts micro-batches):
          BEFORE_TRAIN_ITER
          forward, backward, clip, step  # OptimWrapper.update_params
          AFTER_TRAIN_ITER               # log, step schedulers, maybe BEFORE_SAVE_CHECKPOINT
          [every val_interval: the validation block below]
      AFTER_TRAIN_EPOCH
    AFTER_TRAIN
    AFTER_RUN
    ON_EXCEPTION(exc)                    # instead of the rest, when the run fails or is interrupted

    validation:  BEFORE_VAL, BEFORE_VAL_EPOCH, (BEFORE_VAL_ITER, AFTER_VAL_ITER)*, AFTER_VAL_EPOCH(metrics),
                 AFTER_VAL
    test:        BEFORE_TEST, BEFORE_TEST_EPOCH, (BEFORE_TEST_ITER, AFTER_TEST_ITER)*, AFTER_TEST_EPOCH(metrics),
                 AFTER_TEST
"""

from __future__ import annotations

from enum import Enum


class Event(str, Enum):
    """Hook method names; a hook implements a subset of these as methods named exactly like the values."""

    BEFORE_RUN = "before_run"
    AFTER_LOAD_CHECKPOINT = "after_load_checkpoint"
    BEFORE_TRAIN = "before_train"
    BEFORE_TRAIN_EPOCH = "before_train_epoch"
    BEFORE_TRAIN_ITER = "before_train_iter"
    AFTER_TRAIN_ITER = "after_train_iter"
    AFTER_TRAIN_EPOCH = "after_train_epoch"
    BEFORE_VAL = "before_val"
    BEFORE_VAL_EPOCH = "before_val_epoch"
    BEFORE_VAL_ITER = "before_val_iter"
    AFTER_VAL_ITER = "after_val_iter"
    AFTER_VAL_EPOCH = "after_val_epoch"
    AFTER_VAL = "after_val"
    BEFORE_SAVE_CHECKPOINT = "before_save_checkpoint"
    AFTER_TRAIN = "after_train"
    BEFORE_TEST = "before_test"
    BEFORE_TEST_EPOCH = "before_test_epoch"
    BEFORE_TEST_ITER = "before_test_iter"
    AFTER_TEST_ITER = "after_test_iter"
    AFTER_TEST_EPOCH = "after_test_epoch"
    AFTER_TEST = "after_test"
    AFTER_RUN = "after_run"
    ON_EXCEPTION = "on_exception"


EVENT_NAMES: tuple[str, ...] = tuple(e.value for e in Event)
