"""A procedural dSprites: 3 shapes × 6 scales × 40 orientations × 32×32 positions, 64×64 binary images.

Latents follow the original dataset (square, ellipse, heart; scale 0.5..1; orientation 0..2π;
x, y positions 0..1). The VTAB tasks bin a latent into 16 classes the way VTAB does,
``floor(value_index / (num_values / 16))``: ``dsprites_loc`` predicts the x position (32 → 16),
``dsprites_ori`` the orientation (40 → 16). :func:`write_vtab_task` writes a task folder in the
VTAB-1k community layout, so built-in data goes through the same loader as the real archive.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["best_possible_accuracy", "write_vtab_task"]

SIZE = 64
SHAPES = ("square", "ellipse", "heart")
NUM_SCALES = 6
NUM_ORIENTATIONS = 40
NUM_POSITIONS = 32
NUM_CLASSES = 16
#: task -> (latent it predicts, number of values of that latent)
TASKS: dict[str, tuple[str, int]] = {
    "dsprites_loc": ("pos_x", NUM_POSITIONS),
    "dsprites_ori": ("orientation", NUM_ORIENTATIONS),
}
#: shape -> its rotational symmetry: a square renders the same every 90°, an ellipse every 180°
ROTATIONAL_SYMMETRY: dict[str, int] = {"square": 4, "ellipse": 2, "heart": 1}
_SHAPE_RADIUS = 10.0  # half-size in pixels of a shape at scale 1
_MARGIN = 11.0        # keeps the largest shape inside the image at any position


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Membership of canonical coordinates (u right, v up; the shape spans about [-1, 1])."""
    if shape == "square":
        return (np.abs(u) <= 0.75) & (np.abs(v) <= 0.75)
    if shape == "ellipse":
        return (u / 1.0) ** 2 + (v / 0.5) ** 2 <= 1.0
    if shape == "heart":
        x, y = u * 1.15, v * 1.15 + 0.1
        return (x * x + y * y - 1.0) ** 3 - x * x * y**3 <= 0.0
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render(shape: int, scale: int, orientation: int, pos_x: int, pos_y: int) -> np.ndarray:
    """One 64×64 uint8 image (0 or 255) for latent indices (shape 0..2, scale 0..5, ...)."""
    s = 0.5 + 0.5 * scale / (NUM_SCALES - 1)
    theta = 2.0 * math.pi * orientation / NUM_ORIENTATIONS
    cx = _MARGIN + (SIZE - 1 - 2 * _MARGIN) * pos_x / (NUM_POSITIONS - 1)
    cy = _MARGIN + (SIZE - 1 - 2 * _MARGIN) * pos_y / (NUM_POSITIONS - 1)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    dx, dy = cols - cx, cy - rows  # y axis up
    cos, sin = math.cos(theta), math.sin(theta)
    u = (cos * dx + sin * dy) / (_SHAPE_RADIUS * s)
    v = (-sin * dx + cos * dy) / (_SHAPE_RADIUS * s)
    return (_inside(SHAPES[shape], u, v) * 255).astype(np.uint8)


def sample_latents(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` rows of latent indices (shape, scale, orientation, pos_x, pos_y), uniform."""
    highs = (len(SHAPES), NUM_SCALES, NUM_ORIENTATIONS, NUM_POSITIONS, NUM_POSITIONS)
    return np.stack([rng.integers(0, high, size=count) for high in highs], axis=1)


def label(task: str, latents: np.ndarray) -> int:
    """The VTAB class of one latent row for ``task``."""
    name, values = TASKS[task]
    column = {"orientation": 2, "pos_x": 3}[name]
    return math.floor(int(latents[column]) / (values / NUM_CLASSES))


def best_possible_accuracy(task: str) -> float:
    """The Bayes ceiling of ``task``'s top-1: what a perfect reader of the image could score.

    Why it matters: on ``dsprites_ori`` orientations that differ by a shape's symmetry angle render the
    same image under different labels (as in VTAB's dSprites), so no method can pass about 58 %; scores
    are read against this, not against 100 %. Positions are always visible, so ``dsprites_loc`` is 1.
    """
    name, values = TASKS[task]
    if name != "orientation":
        return 1.0
    per_shape = []
    for shape in SHAPES:
        fold = ROTATIONAL_SYMMETRY[shape]
        period = values // fold
        hits = 0
        for orientation in range(period):  # one image per orbit; guess its most common label
            labels = [label(task, np.array([0, 0, orientation + j * period, 0, 0])) for j in range(fold)]
            hits += max(labels.count(c) for c in set(labels))
        per_shape.append(hits / values)
    return sum(per_shape) / len(per_shape)


def write_vtab_task(folder: Path, task: str, seed: int, n_test: int = 1000) -> None:
    """Write ``folder`` (= ``<root>/<task>``): images/*.png and the four VTAB-1k list files.

    800 train + 200 val + ``n_test`` test images, drawn independently (deterministic in ``seed``).
    """
    if task not in TASKS:
        raise ValueError(f"unknown dSprites task {task!r}; expected one of {sorted(TASKS)}")
    rng = np.random.default_rng(seed)
    counts = {"train800": 800, "val200": 200, "test": n_test}
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {}
    for split, count in counts.items():
        lines[split] = []
        for index, latents in enumerate(sample_latents(count, rng)):
            rel = f"images/{split}_{index:05d}.png"
            Image.fromarray(render(*(int(x) for x in latents)), mode="L").save(folder / rel, optimize=True)
            lines[split].append(f"{rel} {label(task, latents)}")
    lines["train800val200"] = lines["train800"] + lines["val200"]
    for split, rows in lines.items():
        (folder / f"{split}.txt").write_text("\n".join(rows) + "\n")
