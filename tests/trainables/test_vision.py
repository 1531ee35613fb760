from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import torch

from genft_search.errors import UserError
from trainables import common, vision

GENFT = {"shared_dim": 16, "specific_dim": 2, "sigma1": "identity", "sigma2": "identity",
         "init_a": "zeros", "init_b": "zeros", "w0_ratio": 1.0, "scaling": 1.0, "dropout": 0.0}


def _config(root: Path, task: str = "eurosat", **overrides: Any) -> dict[str, Any]:
    config = {
        "method": "genft",
        "model": {"name": "builtin", "checkpoint": "none", "image_size": 16},
        "data": {"kind": "vtab1k", "root": str(root), "task": task},
        "protocol": "honest", "seed": 7, **GENFT,
        "lr": 1e-2, "weight_decay": 0.0, "epochs": 3, "warmup_epochs": 0, "batch_size": 16,
    }
    config.update(overrides)
    return config


@pytest.fixture
def band_root(tmp_path: Path, make_vtab_task) -> Path:
    """4 brightness bands: learnable in a few epochs even from random weights."""
    make_vtab_task(tmp_path, "bands", 4, {"train800": 96, "val200": 48, "test": 40}, seed=3)
    return tmp_path


def test_learns_above_chance_and_reports_each_epoch(band_root: Path) -> None:
    vision.train(_config(band_root, "bands", epochs=6))
    reports = common.LOCAL_SESSION.reports
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4, 5, 6]
    keys = {"epoch", "score", "val_top1", "val_loss", "train_loss", "lr", "trainable_params"}
    assert set(reports[-1]) >= keys
    assert reports[-1]["score"] == reports[-1]["val_top1"]
    assert reports[-1]["val_top1"] >= 50.0  # chance is 25 %
    assert reports[-1]["train_loss"] < reports[0]["train_loss"]
    # GenFT on the built-in ViT (width 128, 4 blocks), a = 16, b = 2: 4·a·d + 2·L·b·d
    assert reports[-1]["trainable_params"] == 4 * 16 * 128 + 2 * 4 * 2 * 128
    # the trial's cost: throughput over the 96 training images, peak RSS of this process (CPU)
    assert all(r["examples_per_second"] > 0 for r in reports)
    assert reports[-1]["peak_rss_mb"] >= reports[0]["peak_rss_mb"] > 50


def test_resume_continues_exactly_where_the_run_stopped(band_root: Path, monkeypatch) -> None:
    config = _config(band_root, "bands", epochs=4, dropout=0.1)
    vision.train(config)
    uninterrupted = list(common.LOCAL_SESSION.reports)

    common.LOCAL_SESSION.reset()
    original = common.report_epoch

    def crash_after_second_epoch(metrics: dict[str, Any], state: dict[str, Any]) -> None:
        original(metrics, state)
        if metrics["epoch"] == 2:
            raise RuntimeError("worker lost")

    monkeypatch.setattr(common, "report_epoch", crash_after_second_epoch)
    with pytest.raises(RuntimeError, match="worker lost"):
        vision.train(config)
    monkeypatch.setattr(common, "report_epoch", original)
    state = common.LOCAL_SESSION.last_state
    assert state is not None and state["epoch"] == 2

    common.LOCAL_SESSION.reset()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    # as a retry under Tune loads it: tensors and plain values only, no arbitrary unpickling
    common.LOCAL_SESSION.resume_state = torch.load(buffer, weights_only=True)
    vision.train(config)
    resumed = common.LOCAL_SESSION.reports
    assert [r["epoch"] for r in resumed] == [3, 4]
    for got, want in zip(resumed, uninterrupted[2:]):
        assert got["val_top1"] == want["val_top1"]
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)


def test_non_finite_loss_raises_floating_point_error(band_root: Path) -> None:
    with pytest.raises(FloatingPointError, match="epoch"):
        vision.train(_config(band_root, "bands", lr=1e20, epochs=3))


def test_paper_protocol_reports_test_metrics_and_best_of_test(band_root: Path) -> None:
    vision.train(_config(band_root, "bands", protocol="paper", epochs=4, eval_every=2))
    reports = common.LOCAL_SESSION.reports
    assert [r["epoch"] for r in reports] == [2, 4]
    assert "val_top1" not in reports[0] and "test_top1" in reports[0]
    assert reports[-1]["score"] == max(r["test_top1"] for r in reports) == reports[-1]["best_test_top1"]


def test_evaluate_test_retrains_on_train_and_val_and_tests_once(band_root: Path) -> None:
    metrics = vision.evaluate_test(_config(band_root, "bands", epochs=2))
    assert metrics["epoch"] == 2 and "test_top1" in metrics and "val_top1" not in metrics
    assert 0.0 <= metrics["test_top1"] <= 100.0
    assert common.LOCAL_SESSION.reports == []  # nothing reported as if it were a search trial
    run = vision._Run(_config(band_root, "bands"), final=True)
    assert len(run.train_loader.dataset) == 96 + 48
    assert len(run.eval_loader.dataset) == 40


def test_check_data_names_the_problem(band_root: Path, tmp_path: Path) -> None:
    vision.check_data({"kind": "vtab1k", "root": str(band_root)}, "bands")
    with pytest.raises(UserError, match="task folder not found"):
        vision.check_data({"kind": "vtab1k", "root": str(band_root)}, "svhn")
    with pytest.raises(UserError, match="not a built-in task"):
        vision.check_data({"kind": "vtab1k", "root": "builtin"}, "svhn")
    with pytest.raises(UserError, match="protocol"):
        vision.train(_config(band_root, "bands", protocol="cheating"))
