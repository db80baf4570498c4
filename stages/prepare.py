"""DVC stage `prepare`: generate the example segmentation dataset from `seed` and `data.*`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from engine.entry import load_checked, run_main, setup_logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.prepare", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = load_checked(args.params)
    from engine.seg.synthetic import generate_dataset

    data = cfg["data"]
    meta = generate_dataset(Path(data["root"]), seed=cfg["seed"], image_size=data["image_size"],
                            num_train=data["num_train"], num_val=data["num_val"], num_test=data["num_test"],
                            classes=data["classes"], max_objects=data["max_objects"])
    counts = ", ".join(f"{split}: {meta['counts'][split]}" for split in ("train", "val", "test"))
    logging.getLogger("trainline").info("prepared %s (%s; classes: %s)", data["root"], counts,
                                        ", ".join(meta["classes"]))


if __name__ == "__main__":
    run_main(main)
