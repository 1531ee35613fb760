"""A sleep-based trainable written only against Ray Tune's public checkpoint API.

Each epoch reports ``epoch``, ``score`` (a fixed function of ``lr`` and the epoch, so a curve is the
same however often it is interrupted) and ``started_at`` (the first epoch this process trained), with
a checkpoint holding the epoch; a trial handed a checkpoint by ``ray.tune.get_checkpoint()`` continues
after it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from typing import Any


def score(lr: float, epoch: int) -> float:
    return round(1.0 - math.exp(-epoch * lr) / (1.0 + abs(math.log10(lr) + 1.0)), 6)


def train(config: dict[str, Any]) -> None:
    from ray import tune

    lr = float(config["lr"])
    start = 1
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder, open(os.path.join(folder, "state.json")) as handle:
            start = int(json.load(handle)["epoch"]) + 1
    for epoch in range(start, int(config.get("epochs", 4)) + 1):
        time.sleep(float(config.get("sleep") or 0.0))
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "state.json"), "w") as handle:
                json.dump({"epoch": epoch}, handle)
            tune.report({"epoch": epoch, "score": score(lr, epoch), "started_at": start},
                        checkpoint=tune.Checkpoint.from_directory(folder))
