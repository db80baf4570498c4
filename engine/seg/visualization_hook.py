"""SegVisualizationHook: MMSeg's picture of validation and test predictions, written to the work dir and the run."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import numpy as np
import torch

from engine.hooks.hook import Hook, Priority
from engine.protocols import RunnerLike

logger = logging.getLogger("trainline")


class SegVisualizationHook(Hook):
    """MMSegmentation's `SegVisualizationHook`: with `draw: true`, after every `interval`-th val/test iteration
    (MMEngine's `every_n_inner_iters`: batch index + 1 divisible by `interval`) each sample of that batch is drawn
    as image | ground truth | prediction | prediction over the image with opacity `alpha`, in the palette of
    `engine.seg.visualize`, with a legend naming the classes.

    Each picture goes to `<work_dir>/vis_data/<val|test>/sample_<k>_<iter>.png` (`k`: the sample's position in
    this evaluation, `iter`: the training iteration validated, or the trained iterations when testing) and, through
    `runner.log_artifact`, to the MLflow run under `vis_data/<val|test>/`. Only the main process draws, from its own
    share of the batch. `show: true` also opens a window (for `wait_time` seconds; 0: until it is closed); without a
    display it warns once and keeps writing the files (MMSeg's `show` stops the storing instead).
    """

    priority = Priority.NORMAL

    def __init__(self, draw: bool = False, interval: int = 50, show: bool = False, wait_time: float = 0.0,
                 alpha: float = 0.8) -> None:
        for name, value in (("draw", draw), ("show", show)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval must be a positive number of iterations, got {interval!r}")
        if isinstance(wait_time, bool) or not isinstance(wait_time, (int, float)) or wait_time < 0:
            raise ValueError(f"wait_time must be 0 or more seconds, got {wait_time!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be between 0 and 1 (the mask's opacity), got {alpha!r}")
        self.draw, self.interval, self.show = draw, interval, show
        self.wait_time, self.alpha = float(wait_time), float(alpha)
        self._seen = 0
        self._warned: set[str] = set()

    def before_run(self, runner: RunnerLike) -> None:
        if not self.draw and runner.is_main_process:
            logger.info("SegVisualizationHook: draw is false, so no predictions are drawn (set draw: true)")

    def before_val_epoch(self, runner: RunnerLike) -> None:
        self._seen = 0

    def before_test_epoch(self, runner: RunnerLike) -> None:
        self._seen = 0

    def after_val_iter(self, runner: RunnerLike, batch_idx: int, data_batch: Any, outputs: Any) -> None:
        self._after_iter(runner, batch_idx, data_batch, outputs, "val", runner.iter)

    def after_test_iter(self, runner: RunnerLike, batch_idx: int, data_batch: Any, outputs: Any) -> None:
        self._after_iter(runner, batch_idx, data_batch, outputs, "test", runner.trained_iters)

    def _after_iter(self, runner: RunnerLike, batch_idx: int, data_batch: Any, outputs: Any, mode: str,
                    step: int) -> None:
        first = self._seen
        self._seen += len(outputs) if hasattr(outputs, "__len__") else 0
        if not self.draw or not runner.is_main_process or (batch_idx + 1) % self.interval:
            return
        images, masks = data_batch[0], data_batch[1]
        if not (isinstance(outputs, torch.Tensor) and outputs.shape == masks.shape):
            self._warn_once("shape", f"SegVisualizationHook: the model's predict outputs are not label maps shaped "
                                     f"like the masks ({_shape(outputs)} vs {_shape(masks)}); nothing drawn")
            return
        from engine.seg.visualize import draw_sample, write_png

        names, ignore_index = _classes(runner)
        out_dir = runner.work_dir / "vis_data" / mode
        for i, (image, gt, pred) in enumerate(zip(images, masks, outputs, strict=True)):
            picture = draw_sample(image, gt, pred, len(names), ignore_index, self.alpha, names)
            path = write_png(out_dir / f"sample_{first + i}_{step}.png", picture)
            runner.log_artifact(path, f"vis_data/{mode}")
            if self.show:
                self._show(picture, path.name)

    def _show(self, picture: np.ndarray, title: str) -> None:
        """A window with the picture; no display (or no interactive backend) is a warning, once."""
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            self._warn_once("show", "SegVisualizationHook: show is true but there is no display (DISPLAY is not "
                                    "set); pictures are only written to vis_data/")
            return
        try:
            import matplotlib
            import matplotlib.pyplot as plt

            if matplotlib.get_backend().lower() in ("agg", "pdf", "ps", "svg", "cairo", "template"):
                raise RuntimeError(f"matplotlib backend {matplotlib.get_backend()!r} cannot open windows")
            fig = plt.figure(title)
            plt.imshow(picture)
            plt.axis("off")
            if self.wait_time > 0:
                plt.pause(self.wait_time)
                plt.close(fig)
            else:
                plt.show(block=True)
        except Exception as exc:  # noqa: BLE001 - a window that cannot open is no reason to stop the evaluation
            self._warn_once("show", f"SegVisualizationHook: cannot show pictures ({type(exc).__name__}: {exc}); "
                                    f"they are only written to vis_data/")

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning("%s", message)


def _classes(runner: RunnerLike) -> tuple[list[str], int]:
    """Class names and ignore index: the evaluator's (IoUMetric has both), else `data.classes` and 255."""
    names = getattr(runner.evaluator, "class_names", None) or runner.cfg.get("data", {}).get("classes")
    if not names:
        count = getattr(runner.evaluator, "num_classes", None)
        names = [str(i) for i in range(int(count))] if count else [str(i) for i in range(256)]
    return list(names), int(getattr(runner.evaluator, "ignore_index", 255))


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if hasattr(value, "shape") else type(value).__name__

