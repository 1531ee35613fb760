"""``best --evaluate-test --seeds N`` on a tiny real built-in study (builtin ViT on dSprites, Ray Tune,
SQLite): N per-seed test evaluations stored, and ``compare`` shows their mean ± std."""

from __future__ import annotations

import json

import optuna
import pytest

from genft_search.config import parse_study_config
from genft_search.stats import mean_std
from genft_search.tune import run_study
from tests.support.engine import run_cli

pytestmark = [pytest.mark.slow]


def _tiny(name: str) -> dict:
    return {
        "name": name, "method": "genft",
        "model": {"name": "builtin", "checkpoint": "builtin"},
        "data": {"kind": "vtab1k", "root": "builtin", "tasks": ["dsprites_loc"]},
        "space": "paper",
        "params": {"shared_dim": {"int": [8, 16], "step": 8}, "specific_dim": {"int": [0, 2]},
                   "lr": {"float": [1.0e-3, 1.0e-2], "log": True}},
        "fixed": {"epochs": 1, "batch_size": 64, "warmup_epochs": 0, "train_limit": 128},
        "sampler": {"name": "random", "seed": 3}, "scheduler": {"name": "fifo"},
        "budget": {"n_trials": 1}, "resources": {"cpu": 1},
        "objective": {"metric": "val_top1", "direction": "maximize"},
    }


def test_seeds_store_one_evaluation_each_and_compare_shows_mean_and_std(builtin_assets, tmp_path):
    url = f"sqlite:///{tmp_path / 'seeds.db'}"
    config = parse_study_config(_tiny("tiny"), "tiny.yaml")
    study = run_study(config, storage=url, progress=False)["dsprites_loc"]
    best = study.best_trial

    shown = run_cli("best", "tiny/dsprites_loc", "--storage", url, "--evaluate-test", "--seeds", "2",
                    "--json")
    assert shown.returncode == 0, shown.stderr
    out = json.loads(shown.stdout)
    assert [e["seed"] for e in out["test_seeds"]] == [1, 2]
    # minutes per seed on a CPU: each seed's start and its test score are shown as they happen
    assert "seed 1 (1/2 to train): retraining on train+val" in shown.stderr
    assert "seed 2 (2/2 to train): test_top1=" in shown.stderr
    stored = optuna.load_study(study_name="tiny/dsprites_loc", storage=url).user_attrs["test_evaluations"]
    assert [(e["seed"], e["trial"]) for e in stored] == [(1, best.number), (2, best.number)]
    values = [e["metrics"]["test_top1"] for e in stored]
    assert all(0.0 <= v <= 100.0 for v in values)
    assert all(e["metrics"]["task"] == "dsprites_loc" for e in stored)

    # seeds already stored are not trained again; the text output has the mean ± std over seeds
    again = run_cli("best", "tiny/dsprites_loc", "--storage", url, "--evaluate-test", "--seeds", "2")
    assert again.returncode == 0, again.stderr
    assert f"test_top1={mean_std(values)}" in again.stdout
    assert "seeds [1, 2] already stored, not retrained" in again.stderr and "retraining" not in again.stderr
    assert optuna.load_study(study_name="tiny/dsprites_loc", storage=url).user_attrs["test_evaluations"] \
        == stored

    compared = run_cli("compare", "tiny", "--storage", url)
    assert compared.returncode == 0, compared.stderr
    assert str(mean_std(values)) in compared.stdout  # "m ± s": the test cell over the 2 seeds


@pytest.mark.parametrize("args, expect", [
    (["--seeds", "2"], "--seeds: only with --evaluate-test"),
    (["--evaluate-test", "--seeds", "0"], "--seeds: 0 seeds; expected an integer >= 1"),
])
def test_bad_seeds_are_one_line_exit_2(tmp_path, args, expect):
    result = run_cli("best", "x", "--storage", f"sqlite:///{tmp_path / 'none.db'}", *args)
    assert result.returncode == 2 and expect in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "none.db").exists()
