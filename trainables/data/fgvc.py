"""FGVC in the layout of the VPT/NOAH releases: ``<root>/<Folder>/{train,val,test}.json``.

Each json maps an image path (relative to the dataset's image root) to an integer class id. The
ids are not contiguous in every dataset (CUB starts at 1, NABirds skips ids), so one label map is
built from the union of all three splits and shared by them: a class id means the same output in
every split. ``val`` is the held-out part of the original train set (the honest protocol's
selection split).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from genft_search.errors import UserError
from trainables.data.images import ListedImages

__all__ = ["FGVCDataset", "check_task", "num_classes"]


@dataclass(frozen=True)
class FGVCInfo:
    folder: str
    image_dir: str  # relative to the dataset folder
    num_classes: int


#: task name (as in the paper's tables) -> where its files live and how many classes it has
DATASETS: dict[str, FGVCInfo] = {
    "cub200": FGVCInfo("CUB_200_2011", "images", 200),
    "nabirds": FGVCInfo("nabirds", "images", 555),
    "oxford_flowers": FGVCInfo("OxfordFlower", "", 102),
    "stanford_dogs": FGVCInfo("StanfordDogs", "Images", 120),
    "stanford_cars": FGVCInfo("StanfordCars", "", 196),
}

SPLITS = ("train", "val", "test")


def _info(task: str) -> FGVCInfo:
    try:
        return DATASETS[task]
    except KeyError:
        raise UserError(
            f"data: tasks: unknown FGVC dataset {task!r}; expected one of {', '.join(DATASETS)}"
        ) from None


def _read_json(root: str | Path, task: str, split: str) -> dict[str, int]:
    if split not in SPLITS:
        raise UserError(f"data: split: unknown FGVC split {split!r}; expected one of {', '.join(SPLITS)}")
    path = Path(root) / _info(task).folder / f"{split}.json"
    if not path.is_file():
        raise UserError(f"{path}: data: root: FGVC split file is missing; "
                        f"expected <root>/{_info(task).folder}/{split}.json")
    try:
        mapping = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: invalid json ({error.msg} at line {error.lineno})") from None
    if not isinstance(mapping, dict) or not mapping:
        raise UserError(f"{path}: expected a non-empty json object mapping image path to class id")
    for key, value in mapping.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{path}: {key}: class id {value!r} is not an integer")
    return mapping


def label_map(root: str | Path, task: str) -> dict[int, int]:
    """Original class id -> contiguous label, from all splits together."""
    ids: set[int] = set()
    for split in SPLITS:
        ids.update(_read_json(root, task, split).values())
    return {class_id: index for index, class_id in enumerate(sorted(ids))}


def num_classes(root: str | Path, task: str) -> int:
    """The known class count, or the number of distinct ids when the files hold more."""
    return max(_info(task).num_classes, len(label_map(root, task)))


def read_split(root: str | Path, task: str, split: str) -> list[tuple[Path, int]]:
    """(image path, contiguous label) pairs of one split."""
    mapping = label_map(root, task)
    info = _info(task)
    image_root = Path(root) / info.folder / info.image_dir
    return [(image_root / rel, mapping[class_id])
            for rel, class_id in sorted(_read_json(root, task, split).items())]


def check_task(root: str | Path, task: str, splits: tuple[str, ...] = SPLITS) -> None:
    """Raise ``UserError`` unless the json files parse and the first image of each split exists."""
    folder = Path(root) / _info(task).folder
    if not folder.is_dir():
        raise UserError(f"{folder}: data: root: FGVC dataset folder not found; "
                        f"expected <root>/{_info(task).folder}")
    for split in splits:
        items = read_split(root, task, split)
        if not items[0][0].is_file():
            raise UserError(f"{folder / (split + '.json')}: image {items[0][0]} is missing")


class FGVCDataset(ListedImages):
    """One split of one FGVC dataset, one label map for all splits (see :class:`ListedImages`)."""

    def __init__(self, root: str | Path, task: str, split: str,
                 transform: Callable[[Image.Image], Any] | None = None) -> None:
        super().__init__(read_split(root, task, split), num_classes(root, task), transform)
