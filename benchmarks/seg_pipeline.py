"""Per-item cost of SegDataset's transforms on one CPU thread (as in a loader worker): MMSeg's ADE20K train
pipeline, each of its steps alone, the test pipeline, and the plain normalisation without a pipeline.

Run: `python -m benchmarks.seg_pipeline [--height 512] [--width 683] [--items 20] [--rounds 3]`."""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from engine.seg.transforms_pipeline import Pipeline, item_generator

ADE_TRAIN = [{"type": "RandomResize", "scale": [2048, 512], "ratio_range": [0.5, 2.0], "keep_ratio": True},
             {"type": "RandomCrop", "crop_size": [512, 512], "cat_max_ratio": 0.75},
             {"type": "RandomFlip", "prob": 0.5}, {"type": "PhotoMetricDistortion"},
             {"type": "Pad", "size": [512, 512]}]
ADE_TEST = [{"type": "Resize", "scale": [2048, 512], "keep_ratio": True}]


def _median_ms(pipeline: Pipeline, image: torch.Tensor, label: torch.Tensor, items: int, rounds: int) -> float:
    pipeline(image, label, item_generator(0, 0, 0))  # warm-up
    times = []
    for r in range(rounds):
        start = time.perf_counter()
        for i in range(items):
            pipeline(image, label, item_generator(0, r, i))
        times.append((time.perf_counter() - start) / items * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=683)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # a DataLoader worker runs one thread
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, args.height, args.width), generator=gen, dtype=torch.uint8)
    label = torch.randint(0, 150, (args.height, args.width), generator=gen, dtype=torch.uint8)
    cases: list[tuple[str, list[dict[str, Any]], bool]] = [
        ("ADE20K train pipeline", ADE_TRAIN, False),
        *((f"  {step['type']} (+ normalise)", [step], False) for step in ADE_TRAIN),
        ("ADE20K test pipeline (Resize)", ADE_TEST, True),
        ("normalise only", [], False),
    ]
    print(f"{args.height}x{args.width} uint8 image, ms per item (median of {args.rounds} rounds of {args.items})")
    for name, steps, test in cases:
        ms = _median_ms(Pipeline(steps, "pipeline", test=test), image, label, args.items, args.rounds)
        print(f"{name:40s} {ms:8.1f}")


if __name__ == "__main__":
    main()
