"""The vision trainable inside real Ray Tune runs, on the built-in dSprites and built-in ViT."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from trainables import common, vision

pytestmark = pytest.mark.slow

CONFIG: dict[str, Any] = {
    "method": "genft",
    "model": {"name": "builtin", "checkpoint": "builtin"},
    "data": {"kind": "vtab1k", "root": "builtin", "task": "dsprites_loc"},
    "protocol": "honest", "seed": 42,
    "shared_dim": 32, "specific_dim": 2, "sigma1": "identity", "sigma2": "identity",
    "init_a": "zeros", "init_b": "zeros", "w0_ratio": 1.0, "scaling": 1.0, "dropout": 0.1,
    "weight_decay": 1e-4, "epochs": 4, "warmup_epochs": 1, "batch_size": 64, "lr": 1e-2,
}


@pytest.fixture(scope="module")
def ray_session():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    vision.check_data(CONFIG["data"], "dsprites_loc")  # prepares the built-in assets in the driver
    vision.check_data(CONFIG["data"], "dsprites_ori")
    from trainables.assets import ensure_builtin_vit

    ensure_builtin_vit()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k.startswith("GENFT_")}})
    yield ray
    ray.shutdown()


def _tuner(trainable, param_space: dict[str, Any], storage: Path, max_failures: int = 0):
    from ray import tune

    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=param_space,
        tune_config=tune.TuneConfig(metric="score", mode="max", reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(storage), name="vision", verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=max_failures)),
    )


def test_genft_trials_learn_and_checkpoint_in_a_tune_run(ray_session, tmp_path: Path) -> None:
    from ray import tune

    space = {**CONFIG, "data": {**CONFIG["data"], "task": tune.grid_search(["dsprites_loc", "dsprites_ori"])}}
    results = _tuner(vision.train, space, tmp_path).fit()
    assert not results.errors
    assert len(results) == 2
    for result in results:
        history = result.metrics_dataframe
        assert history["epoch"].tolist() == [1, 2, 3, 4]
        assert {"val_top1", "val_loss", "train_loss", "lr", "trainable_params"} <= set(history.columns)
        assert result.checkpoint is not None
        assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
        if result.config["data"]["task"] == "dsprites_loc":
            assert result.metrics["val_top1"] > 2 * 100 / 16  # twice chance on 16 classes


def test_a_retried_trial_resumes_from_its_checkpoint(ray_session, tmp_path: Path) -> None:
    def crash_once(config: dict[str, Any]) -> None:
        """vision.train, but the first attempt dies while finishing epoch 3 (a lost worker).

        It dies an epoch after reporting epoch 2, so the driver has registered that checkpoint,
        as it would have for a worker lost mid-training.

        Defined inside the test so that Ray pickles it by value together with the patch.
        """
        marker = Path(config.pop("crash_marker"))
        original = common.report_epoch

        def report(metrics: dict[str, Any], state: dict[str, Any]) -> None:
            if metrics["epoch"] == 3 and not marker.exists():
                marker.touch()
                raise RuntimeError("injected crash in epoch 3")
            original(metrics, state)
            with open(str(marker) + ".epochs", "a") as log:  # every attempt's reports, in order
                log.write(f"{metrics['epoch']}\n")

        common.report_epoch = report
        try:
            vision.train(config)
        finally:
            common.report_epoch = original

    space = {**CONFIG, "crash_marker": str(tmp_path / "crashed")}
    results = _tuner(crash_once, space, tmp_path / "runs", max_failures=1).fit()
    assert (tmp_path / "crashed").exists()
    assert not results.errors
    (result,) = results
    # restarted from scratch it would report 1, 2, 1, 2, 3, 4 (Ray's own progress.csv is rewritten
    # on restore, so the attempts' reports are read from the trainable's log instead)
    assert (tmp_path / "crashed.epochs").read_text().split() == ["1", "2", "3", "4"]
    assert result.metrics["epoch"] == 4
    assert result.metrics_dataframe["epoch"].tolist()[-1] == 4
