"""A synthetic VTAB-1k task and a random-init timm ViT checkpoint: the GPU check needs no downloads.

The task folder has the layout ``trainables/data/vtab1k.py`` reads: ``<root>/<task>/images/*.png`` and
the list files ``train800.txt``, ``val200.txt``, ``train800val200.txt`` and ``test.txt`` of lines
``images/<file>.png <label>``. Class ``k`` is a bright square in grid cell ``k`` on noise, so a trial
learns something and its accuracy moves. The checkpoint is ``timm.create_model(..., pretrained=False)``
saved with safetensors, read back by the trainables' own loader (``trainables/models.py``).

    python benchmarks/synthetic_vtab.py --root OUT/vtab-1k --task synthetic --size 224
    python benchmarks/synthetic_vtab.py --checkpoint OUT/vit_b16.safetensors --model vit_base_patch16_224
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def write_task(root: str | Path, task: str = "synthetic", *, classes: int = 8, n_train: int = 800,
               n_val: int = 200, n_test: int = 200, size: int = 224, seed: int = 0) -> Path:
    """Write one task folder under ``root``; returns ``<root>/<task>``."""
    folder = Path(root) / task
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    grid = math.ceil(math.sqrt(classes))
    cell = size // grid
    lines: dict[str, list[str]] = {}
    for split, count in (("train800", n_train), ("val200", n_val), ("test", n_test)):
        rows = []
        for i in range(count):
            label = i % classes
            pixels = rng.integers(0, 96, size=(size, size, 3), dtype=np.uint8)
            r, c = divmod(label, grid)
            pad = max(1, cell // 6)
            pixels[r * cell + pad:(r + 1) * cell - pad, c * cell + pad:(c + 1) * cell - pad] = \
                rng.integers(200, 256, size=3, dtype=np.uint8)
            name = f"images/{split}_{i:05d}.png"
            Image.fromarray(pixels).save(folder / name)
            rows.append(f"{name} {label}")
        lines[split] = rows
    lines["train800val200"] = lines["train800"] + lines["val200"]
    for split, rows in lines.items():
        (folder / f"{split}.txt").write_text("\n".join(rows) + "\n")
    return folder


def write_checkpoint(path: str | Path, model: str = "vit_base_patch16_224", **kwargs: Any) -> Path:
    """A random-init timm model's state dict as safetensors (the head is dropped when loaded)."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = timm.create_model(model, pretrained=False, **kwargs)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", help="write a task folder under this VTAB-1k root")
    ap.add_argument("--task", default="synthetic")
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--size", type=int, default=224, help="image side in pixels")
    ap.add_argument("--n-train", type=int, default=800)
    ap.add_argument("--n-val", type=int, default=200)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--checkpoint", help="write a random-init checkpoint here (.safetensors)")
    ap.add_argument("--model", default="vit_base_patch16_224")
    args = ap.parse_args()
    if args.root:
        print(write_task(args.root, args.task, classes=args.classes, n_train=args.n_train, n_val=args.n_val,
                         n_test=args.n_test, size=args.size))
    if args.checkpoint:
        print(write_checkpoint(args.checkpoint, args.model))


if __name__ == "__main__":
    main()
