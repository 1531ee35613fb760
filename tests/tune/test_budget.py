"""Cost in the store and equal budgets, on real Ray Tune + Optuna + SQLite with the tiny torch trainable.

Every trial (complete, pruned, failed) stores its ``cost``; the study's sum includes them all; a
``budget.device_hours`` stops a study, and the trials it cuts are re-enqueued, not counted.
"""

from __future__ import annotations

import json
import os

import optuna
import pytest
from optuna.trial import TrialState

from genft_search import store
from genft_search.config import parse_study_config
from genft_search.report import write_report
from genft_search.tune import run_study
from tests.support.engine import run_cli, toy_study

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]

CPUS = float(os.cpu_count() or 1)


def _run(doc, url):
    return run_study(parse_study_config(doc, "study.yaml"), storage=url, progress=False)


def test_every_trial_stores_its_cost_and_the_study_sums_pruned_and_failed(sqlite_url, tmp_path):
    doc = toy_study(
        "cost",
        params={"handicap": {"choice": [0.0, 0.5]}, "nan_at_epoch": {"choice": [0, 2]}},
        warm_start=[{"handicap": 0.0, "nan_at_epoch": 0}, {"handicap": 0.5, "nan_at_epoch": 0},
                    {"handicap": 0.5, "nan_at_epoch": 0}, {"handicap": 0.0, "nan_at_epoch": 2}],
        scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2},
        budget={"n_trials": 4},
        resources={"cpu": CPUS},  # one at a time, so ASHA prunes the handicapped ones
    )
    study = _run(doc, sqlite_url)["a"]
    trials = study.get_trials()
    states = {t.state for t in trials}
    assert TrialState.PRUNED in states and TrialState.FAIL in states and TrialState.COMPLETE in states
    for trial in trials:
        cost = trial.user_attrs["cost"]
        assert cost["device"] == "cpu" and cost["devices"] == CPUS
        assert cost["wall_seconds"] > 0
        assert cost["device_seconds"] == pytest.approx(cost["wall_seconds"] * CPUS, abs=0.01)
        assert cost["peak_rss_mb"] > 10  # a Python process with torch loaded
        assert cost["examples_per_second"] > 0
        assert cost["trainable_params"] > 0  # from the last report, also of the failed trial
        if trial.state != TrialState.FAIL:
            assert cost["trainable_params"] == trial.user_attrs["metrics"]["trainable_params"]
    total = store.study_cost(study)
    assert total.trials == 4 and total.estimated == total.unknown == 0
    assert total.cpu_seconds == pytest.approx(sum(t.user_attrs["cost"]["device_seconds"] for t in trials))
    assert total.gpu_seconds == 0 and total.device_hours == pytest.approx(total.cpu_seconds / 3600)
    assert total.peak_rss_mb == max(t.user_attrs["cost"]["peak_rss_mb"] for t in trials)
    assert study.user_attrs["resources"] == {"cpu": CPUS, "gpu": 0.0}

    # the CLI shows the cost: status, best, export
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    status = run_cli("status", "--storage", sqlite_url, env=env)
    assert status.returncode == 0, status.stderr
    assert f"{total.cpu_seconds / 3600:.3g} CPU-h, peak {total.peak_rss_mb:.0f} MB" in status.stdout
    best = run_cli("best", "cost/a", "--storage", sqlite_url, "--json", env=env)
    assert best.returncode == 0, best.stderr
    shown = json.loads(best.stdout)
    assert shown["cost"]["device_seconds"] == study.best_trial.user_attrs["cost"]["device_seconds"]
    assert shown["study_cost"]["trials"] == 4
    assert shown["study_cost"]["cpu_seconds"] == pytest.approx(total.cpu_seconds)
    exported = run_cli("export", "cost/a", "--storage", sqlite_url, "--format", "json", env=env)
    assert exported.returncode == 0, exported.stderr
    rows = json.loads(exported.stdout)
    rows = rows["trials"] if isinstance(rows, dict) else rows
    assert all(r["device_seconds"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    page = write_report("cost/a", storage=sqlite_url, out_dir=tmp_path, png=False).read_text()
    assert f"Cost of the search (every finished trial, pruned and failed included): {total.summary()}" in page


def test_device_hours_stops_the_study_and_requeues_the_cut_trials(sqlite_url):
    # two trials at once, 1 CPU each, 4 epochs of >= 1 s: 3 CPU-seconds run out mid-trial
    doc = toy_study("devbudget", fixed={"epochs": 4, "sleep": 1.0},
                    budget={"n_trials": 6, "device_hours": 3 / 3600}, resources={"cpu": 1})
    study = _run(doc, sqlite_url)["a"]
    trials = study.get_trials()
    assert TrialState.RUNNING not in {t.state for t in trials}
    cut = [t for t in trials if t.state == TrialState.FAIL]
    assert cut
    for trial in cut:
        assert "budget.device_hours" in trial.user_attrs["fail_reason"]
        assert trial.user_attrs["requeued"] is True
        assert trial.user_attrs["cost"]["device_seconds"] > 0
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in waiting) == sorted(t.number for t in cut)
    assert store.state_counts(study)["finished"] == 0  # cut trials do not count towards n_trials
    spent = store.study_cost(study).cpu_seconds
    assert spent >= 3

    # run again with the same budget: it is spent, nothing runs
    again = _run(doc, sqlite_url)["a"]
    assert len(again.get_trials()) == len(trials)

    # a larger budget: the re-enqueued points run first; cut again, they are re-enqueued again
    doc["budget"] = {"n_trials": 6, "device_hours": (spent + 3) / 3600}
    study = _run(doc, sqlite_url)["a"]
    retried = [t for t in study.get_trials() if t.number in {w.number for w in waiting}]
    assert all(t.state != TrialState.WAITING for t in retried)
    for trial in study.get_trials(states=(TrialState.FAIL,)):
        assert trial.user_attrs["requeued"] is True
    counts = store.state_counts(study)
    assert counts["finished"] == counts["complete"] + counts["pruned"]
    assert optuna.load_study(study_name="devbudget/a", storage=sqlite_url).user_attrs["budget"][
        "device_hours"] == pytest.approx((spent + 3) / 3600)
