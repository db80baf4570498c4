"""Prepared-data read cost: the flat memory-mapped arrays SegFolder writes vs one .npy file per sample (sharded) vs
decoding the source PNGs, per item through SegDataset-like reads; plus the per-item label check's share.

Run: `python -m benchmarks.seg_formats [--n 96] [--size 256] [--rounds 5]`."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from engine.seg.dataset import SegDataset
from engine.seg.folder import prepare_folder
from engine.seg.prepared import check_labels


def _median_ms(fn, n: int, rounds: int) -> float:
    order = np.random.default_rng(0).permutation(n)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in order:
            fn(int(i))
        times.append((time.perf_counter() - start) / n * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for split in ("train", "val"):
            for i in range(args.n if split == "train" else 1):
                h, w = args.size - (i % 5) * 8, args.size
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp / f"i{split}{i}.png")
                (tmp / "src/img_dir" / split).mkdir(parents=True, exist_ok=True)
                (tmp / "src/ann_dir" / split).mkdir(parents=True, exist_ok=True)
                (tmp / f"i{split}{i}.png").rename(tmp / "src/img_dir" / split / f"{i}.png")
                Image.fromarray(rng.integers(0, 19, (h, w), dtype=np.uint8)).save(tmp / "src/ann_dir" / split /
                                                                                   f"{i}.png")
        prepare_folder(tmp / "data", source=str(tmp / "src"), classes=[str(c) for c in range(19)], img_suffix=".png")
        ds = SegDataset(tmp / "data", "train", flip=False)
        shards = tmp / "shards"
        shards.mkdir()
        for i in range(len(ds)):
            start, h, w = (int(v) for v in ds.index[i])
            np.save(shards / f"{i}_img.npy", np.asarray(ds.images[start:start + h * w]).reshape(h, w, 3))
            np.save(shards / f"{i}_mask.npy", np.asarray(ds.masks[start:start + h * w]).reshape(h, w))

        def flat(i: int) -> None:
            start, h, w = (int(v) for v in ds.index[i])
            np.array(ds.images[start:start + h * w]), np.array(ds.masks[start:start + h * w])

        def sharded(i: int) -> None:
            np.load(shards / f"{i}_img.npy"), np.load(shards / f"{i}_mask.npy")

        def png(i: int) -> None:
            np.asarray(Image.open(tmp / "src/img_dir/train" / f"{i}.png").convert("RGB"))
            np.asarray(Image.open(tmp / "src/ann_dir/train" / f"{i}.png"))

        masks = [np.asarray(Image.open(tmp / "src/ann_dir/train" / f"{i}.png")) for i in range(args.n)]
        with_ignore = [m.copy() for m in masks]
        for m in with_ignore:
            m[:4] = 255
        rows = [("flat memory-mapped arrays (SegFolder's form)", _median_ms(flat, args.n, args.rounds)),
                ("one .npy file per sample (sharded)", _median_ms(sharded, args.n, args.rounds)),
                ("decode the source PNGs", _median_ms(png, args.n, args.rounds)),
                ("SegDataset.__getitem__ (flat read + label check + normalise)",
                 _median_ms(ds.__getitem__, args.n, args.rounds)),
                ("label check alone, labels in range",
                 _median_ms(lambda i: check_labels(masks[i], 19, 255, ""), args.n, args.rounds)),
                ("label check alone, mask with ignore pixels",
                 _median_ms(lambda i: check_labels(with_ignore[i], 19, 255, ""), args.n, args.rounds))]
        print(f"{args.n} items of about {args.size}x{args.size}, random order, median of {args.rounds} rounds")
        print("| read | ms / item |\n|---|---|")
        for name, ms in rows:
            print(f"| {name} | {ms:.3f} |")


if __name__ == "__main__":
    main()
