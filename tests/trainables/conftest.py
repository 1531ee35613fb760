"""Shared fixtures: real image folders in the VTAB-1k and FGVC layouts, written per test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_vtab_task(root: Path, task: str, num_classes: int, per_split: dict[str, int], size: int = 16,
                    seed: int = 0) -> Path:
    """A VTAB-1k task folder whose class is the image's brightness band (learnable, not random)."""
    rng = np.random.default_rng(seed)
    folder = root / task
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {}
    for split, count in per_split.items():
        lines[split] = []
        for index in range(count):
            label = int(rng.integers(0, num_classes))
            level = int(255 * (label + 0.5) / num_classes)
            pixels = np.clip(level + rng.integers(-10, 11, size=(size, size, 3)), 0, 255).astype(np.uint8)
            rel = f"images/{split}_{index}.png"
            Image.fromarray(pixels).save(folder / rel)
            lines[split].append(f"{rel} {label}")
    if "train800" in lines and "val200" in lines and "train800val200" not in lines:
        lines["train800val200"] = lines["train800"] + lines["val200"]
    for split, rows in lines.items():
        (folder / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture
def make_vtab_task():
    """The :func:`write_vtab_task` helper, for tests that need their own task folders."""
    return write_vtab_task


@pytest.fixture
def vtab_root(tmp_path: Path) -> Path:
    root = tmp_path / "vtab-1k"
    write_vtab_task(root, "eurosat", 10, {"train800": 20, "val200": 8, "test": 12})
    return root


@pytest.fixture
def fgvc_root(tmp_path: Path) -> Path:
    """CUB-like: ids start at 1 and the test split holds an id the train split lacks."""
    root = tmp_path / "fgvc"
    images = root / "CUB_200_2011" / "images"
    splits = {"train": {"001.a/x1.jpg": 1, "001.a/x2.jpg": 1, "003.c/y1.jpg": 3},
              "val": {"003.c/y2.jpg": 3},
              "test": {"001.a/t1.jpg": 1, "007.g/t2.jpg": 7}}
    for split, mapping in splits.items():
        for rel in mapping:
            (images / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 30, 3), 100, np.uint8)).save(images / rel)
        (root / "CUB_200_2011" / f"{split}.json").write_text(json.dumps(mapping))
    return root


@pytest.fixture(autouse=True)
def _local_session():
    """Plain-Python runs record into ``common.LOCAL_SESSION``: start each test empty and quiet."""
    from trainables import common

    common.LOCAL_SESSION.reset()
    common.LOCAL_SESSION.verbose = False
    yield
    common.LOCAL_SESSION.reset()
    common.LOCAL_SESSION.verbose = True
