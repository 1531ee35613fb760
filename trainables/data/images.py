"""A split listed as (image path, label) pairs: what the VTAB-1k and FGVC readers both produce."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

__all__ = ["ListedImages"]


class ListedImages(Dataset):
    """Images decoded with PIL as RGB and passed to ``transform``, with their integer labels."""

    def __init__(self, items: Sequence[tuple[Path, int]], num_classes: int,
                 transform: Callable[[Image.Image], Any] | None = None) -> None:
        self.items = list(items)
        self.num_classes = num_classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.items[index]
        with Image.open(path) as image:
            image = image.convert("RGB")
        return (self.transform(image) if self.transform else image), label

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.items]
