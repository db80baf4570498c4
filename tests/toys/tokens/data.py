"""Character windows over a generated text (a repeating phrase with random case), read from root/<split>.txt."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

VOCAB = "abcdefghijklmnopqrstuvwxyz ."


def write_text(root: str | Path, seed: int = 0) -> None:
    """The corpus files (the test commits them: this project has its data ready, `prepare: null`)."""
    gen = torch.Generator().manual_seed(seed)
    phrase = "the cat sat on the mat. "
    out = Path(root)
    out.mkdir(parents=True, exist_ok=True)
    for split, repeats in (("train", 60), ("val", 10), ("test", 10)):
        start = int(torch.randint(0, len(phrase), (1,), generator=gen))
        (out / f"{split}.txt").write_text((phrase * repeats)[start:], encoding="utf-8")


class CharWindows(Dataset):
    """Items are {"ids": block tokens, "targets": the next token of each}."""

    def __init__(self, root: str, split: str, block: int = 8) -> None:
        text = (Path(root) / f"{split}.txt").read_text(encoding="utf-8")
        self.ids = torch.tensor([VOCAB.index(c) for c in text], dtype=torch.long)
        self.block = block

    def __len__(self) -> int:
        return (len(self.ids) - 1) // self.block

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        start = index * self.block
        return {"ids": self.ids[start:start + self.block], "targets": self.ids[start + 1:start + self.block + 1]}


def collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}
