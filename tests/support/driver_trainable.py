"""A sleep trainable for the two-driver drill: each driver's environment sets how good its trials look.

Both drivers run the same study file, so what tells their trials apart comes from the driver's
environment (each CLI process starts its own local Ray, whose workers inherit it):
``GENFT_TEST_OFFSET`` is added to every score (a driver whose trials are all worse), and
``GENFT_TEST_GATE`` names a file the trial waits for before its first report (so the test decides when
that driver's first rung decision happens: after the other driver's values are in the store).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def train(config: dict[str, Any]) -> None:
    from ray import tune

    x = float(config.get("x", 0.5))
    offset = float(os.environ.get("GENFT_TEST_OFFSET", "0"))
    gate = os.environ.get("GENFT_TEST_GATE")
    for epoch in range(1, int(config.get("epochs", 3)) + 1):
        time.sleep(float(config.get("sleep", 0.3)))
        if gate and epoch == 1:
            deadline = time.monotonic() + 180
            while not Path(gate).exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        score = 1.0 - (x - 0.3) ** 2 + 0.01 * epoch + offset
        tune.report({"epoch": epoch, "score": score, "val_top1": score})
