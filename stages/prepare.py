"""DVC stage `prepare`: generate the example segmentation dataset from `seed` and `data.*`."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.entry import run_main, start_stage


def main(argv: list[str] | None = None) -> None:
    _, cfg = start_stage("prepare", __doc__, argv)
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
