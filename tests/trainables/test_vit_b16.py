"""The full-size path: ViT-B/16 at 224² with GenFT on a few synthetic VTAB-format images, 2 epochs.

Uses ``$GENFT_VIT_CKPT`` when that file exists (e.g. the original ``ViT-B_16.npz``), random weights
otherwise. Prints the wall time (``pytest -s``) for the README's evidence.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from trainables import common, vision

pytestmark = pytest.mark.slow


def test_vit_b16_genft_two_epochs_end_to_end(tmp_path: Path, make_vtab_task) -> None:
    make_vtab_task(tmp_path, "eurosat", 10, {"train800": 16, "val200": 8, "test": 8}, size=64)
    checkpoint = os.environ.get("GENFT_VIT_CKPT", "")
    checkpoint = checkpoint if checkpoint and Path(checkpoint).is_file() else "none"
    config = {
        "method": "genft",
        "model": {"name": "vit_base_patch16_224", "checkpoint": checkpoint},
        "data": {"kind": "vtab1k", "root": str(tmp_path), "task": "eurosat"},
        "protocol": "honest", "seed": 42,
        # the paper's eurosat setting (Appendix B)
        "w0_ratio": 1.2, "init_a": "kaiming_uniform", "init_b": "xavier_uniform", "sigma1": "identity",
        "sigma2": "leaky_relu", "shared_dim": 100, "specific_dim": 0, "dropout": 0.1, "scaling": 1.2,
        "label_smoothing": 0.1, "lr": 1e-3, "weight_decay": 1e-4,
        "epochs": 2, "warmup_epochs": 1, "batch_size": 8,
    }
    common.LOCAL_SESSION.reset()
    started = time.perf_counter()
    vision.train(config)
    seconds = time.perf_counter() - started
    reports = list(common.LOCAL_SESSION.reports)
    common.LOCAL_SESSION.reset()
    assert [r["epoch"] for r in reports] == [1, 2]
    assert reports[-1]["trainable_params"] == 4 * 100 * 768  # a = 100, b = 0: 0.307M as in the paper
    assert reports[-1]["head_params"] == 768 * 10 + 10
    source = config["model"]["checkpoint"]
    print(f"\nViT-B/16 GenFT, 2 epochs on 16+8 images at 224² ({source}): {seconds:.1f} s")
