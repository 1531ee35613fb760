"""A real but tiny trainable for engine tests: a small torch MLP on a fixed synthetic problem.

It follows the trainable contract (docs/internals.md): one ``ray.tune.report`` per epoch with
``epoch`` (1-based), ``score``, ``val_top1``, ``val_loss``, ``train_loss``, ``trainable_params``,
``examples_per_second`` and ``peak_rss_mb`` (its cost),
and a non-finite loss raises ``FloatingPointError``. ``nan_at_epoch`` makes the loss NaN on purpose;
``sleep`` slows an epoch down (for kill tests); ``crash`` raises a plain error; ``handicap`` lowers the
reported accuracy and slows each epoch by 0.3 s (so a scheduler has seen better trials first).
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import nn

from trainables.common import usage_metrics


def _data(seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(256, 8, generator=g)
    w = torch.randn(8, 3, generator=g)
    y = (x @ w).argmax(dim=1)
    return x[:192], y[:192], x[192:], y[192:]


def train(config: dict[str, Any]) -> None:
    import ray.tune

    torch.set_num_threads(1)
    torch.manual_seed(int(config.get("seed", 0)))
    xtr, ytr, xva, yva = _data(int(config.get("seed", 0)))
    width = int(config.get("width", 16))
    model = nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 3))
    opt = torch.optim.SGD(model.parameters(), lr=float(config.get("lr", 0.1)))
    loss_fn = nn.CrossEntropyLoss()
    n_params = sum(p.numel() for p in model.parameters())
    started = time.perf_counter()
    for epoch in range(1, int(config.get("epochs", 4)) + 1):
        if config.get("crash") and epoch == 2:
            raise RuntimeError("toy trainable crashed on purpose")
        model.train()
        opt.zero_grad()
        loss = loss_fn(model(xtr), ytr)
        if config.get("nan_at_epoch") == epoch:  # a diverging run
            loss = loss * float("nan")
        if not math.isfinite(float(loss)):
            raise FloatingPointError(f"non-finite training loss ({float(loss)}) at epoch {epoch}")
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(xva)
            val_loss = float(loss_fn(logits, yva))
            acc = float((logits.argmax(1) == yva).float().mean())
        handicap = float(config.get("handicap") or 0.0)
        acc -= handicap
        delay = float(config.get("sleep") or 0.0) + (0.3 if handicap else 0.0)
        if delay:
            time.sleep(delay)
        ray.tune.report({"epoch": epoch, "score": acc, "val_top1": acc, "val_loss": val_loss,
                         "train_loss": float(loss), "trainable_params": n_params,
                         "examples_per_second": len(xtr) * epoch / (time.perf_counter() - started),
                         **usage_metrics("cpu")})
