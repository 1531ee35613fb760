"""VTAB-1k in the community layout: ``<root>/<task>/`` with list files of ``relative/path label``.

The list files are ``train800.txt``, ``val200.txt``, ``train800val200.txt`` and ``test.txt``; image
paths are relative to ``<root>/<task>``. The 19 task folder names and class counts are those of the
distributed archive; a folder with another name is read too, its class count taken from its labels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from genft_search.errors import UserError
from trainables.data.images import ListedImages

__all__ = ["VTabDataset", "check_task", "num_classes"]

#: task folder name -> (number of classes, VTAB group)
TASKS: dict[str, tuple[int, str]] = {
    "caltech101": (102, "natural"),
    "cifar": (100, "natural"),
    "dtd": (47, "natural"),
    "oxford_flowers102": (102, "natural"),
    "oxford_iiit_pet": (37, "natural"),
    "svhn": (10, "natural"),
    "sun397": (397, "natural"),
    "patch_camelyon": (2, "specialized"),
    "eurosat": (10, "specialized"),
    "resisc45": (45, "specialized"),
    "diabetic_retinopathy": (5, "specialized"),
    "clevr_count": (8, "structured"),
    "clevr_dist": (6, "structured"),
    "dmlab": (6, "structured"),
    "kitti": (4, "structured"),
    "dsprites_loc": (16, "structured"),
    "dsprites_ori": (16, "structured"),
    "smallnorb_azi": (18, "structured"),
    "smallnorb_ele": (9, "structured"),
}

SPLITS = ("train800", "val200", "train800val200", "test")


def tasks_in_group(group: str) -> list[str]:
    """Task names of one VTAB group: natural, specialized or structured."""
    return [name for name, (_, g) in TASKS.items() if g == group]


def split_file(root: str | Path, task: str, split: str) -> Path:
    return Path(root) / task / f"{split}.txt"


def read_split(root: str | Path, task: str, split: str) -> list[tuple[Path, int]]:
    """The (image path, label) pairs of one list file; malformed lines are a ``UserError``."""
    if split not in SPLITS:
        raise UserError(f"data: split: unknown VTAB-1k split {split!r}; expected one of {', '.join(SPLITS)}")
    path = split_file(root, task, split)
    if not path.is_file():
        raise UserError(f"{path}: data: root: VTAB-1k list file is missing; "
                        f"expected <root>/{task}/{split}.txt")
    items: list[tuple[Path, int]] = []
    base = Path(root) / task
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise UserError(f"{path}: line {number}: expected 'relative/image/path label', got {line!r}")
        items.append((base / parts[0].strip(), int(parts[1])))
    if not items:
        raise UserError(f"{path}: data: the list file is empty; expected lines 'relative/image/path label'")
    return items


def num_classes(root: str | Path, task: str) -> int:
    """Class count of ``task``: the known count for the 19 VTAB tasks, else 1 + the largest label."""
    if task in TASKS:
        return TASKS[task][0]
    labels = [label for split in SPLITS if split_file(root, task, split).is_file()
              for _, label in read_split(root, task, split)]
    if not labels:
        raise UserError(f"{Path(root) / task}: data: tasks: no VTAB-1k list files found")
    return max(labels) + 1


def check_task(root: str | Path, task: str, splits: tuple[str, ...] = SPLITS) -> None:
    """Raise ``UserError`` unless ``task``'s list files exist, labels fit and the first image exists."""
    folder = Path(root) / task
    if not folder.is_dir():
        known = ", ".join(sorted(TASKS))
        raise UserError(
            f"{folder}: data: tasks: VTAB-1k task folder not found; "
            f"expected <root>/<task> for a task in {known}"
        )
    classes = num_classes(root, task)
    for split in splits:
        items = read_split(root, task, split)
        bad = [label for _, label in items if not 0 <= label < classes]
        if bad:
            raise UserError(
                f"{split_file(root, task, split)}: label {bad[0]} out of range; expected 0..{classes - 1}"
            )
        if not items[0][0].is_file():
            raise UserError(f"{split_file(root, task, split)}: image {items[0][0]} is missing")


class VTabDataset(ListedImages):
    """One split of one VTAB-1k task (see :class:`ListedImages`)."""

    def __init__(self, root: str | Path, task: str, split: str,
                 transform: Callable[[Image.Image], Any] | None = None) -> None:
        super().__init__(read_split(root, task, split), num_classes(root, task), transform)
