"""A sleep-based trainable for the fault drills, written only against Ray Tune's public API.

Each epoch sleeps ``sleep`` seconds and reports ``epoch``, ``score`` and ``val_top1`` (a smooth function
of the searched ``x``) with ``ray.tune.report``; no torch, so a trial's worker starts fast.
"""

from __future__ import annotations

import time
from typing import Any


def train(config: dict[str, Any]) -> None:
    from ray import tune

    x = float(config.get("x", 0.5))
    for epoch in range(1, int(config.get("epochs", 3)) + 1):
        time.sleep(float(config.get("sleep", 0.5)))
        score = 1.0 - (x - 0.3) ** 2 + 0.01 * epoch
        tune.report({"epoch": epoch, "score": score, "val_top1": score})
