"""The study engine on real Ray Tune + Optuna + SQLite, with the tiny torch trainable of the tests.

Checks what the store ends up holding: PRUNED trials with their learning curves and budget, FAIL
with a reason for NaN losses, exact totals on resume, refusal of a changed space, grids, several
objectives and paper warm starts.
"""

from __future__ import annotations

import os

import optuna
import pytest
from optuna.trial import TrialState

from genft_search import store
from genft_search.config import parse_study_config
from genft_search.errors import UserError
from genft_search.paper import paper_setting
from genft_search.tune import run_study
from tests.support.engine import toy_study

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_local")]


def _run(doc, url, **kwargs):
    return run_study(parse_study_config(doc, "study.yaml"), storage=url, progress=False, **kwargs)


def _states(study):
    return [t.state for t in study.get_trials(deepcopy=False)]


def test_asha_stops_are_pruned_with_curves_and_budget(sqlite_url):
    doc = toy_study(
        "asha",
        params={"handicap": {"choice": [0.0, 0.5]}},
        warm_start=[{"handicap": 0.0}, {"handicap": 0.5}, {"handicap": 0.5}, {"handicap": 0.5}],
        scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 2},
        budget={"n_trials": 4},
        # one trial at a time: ASHA's decisions then follow the warm-start order, not the machine's load
        resources={"cpu": float(os.cpu_count() or 1)},
    )
    study = _run(doc, sqlite_url)["a"]
    trials = study.get_trials()
    assert len(trials) == 4 and TrialState.RUNNING not in _states(study)
    good = [t for t in trials if t.params["handicap"] == 0.0]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert good[0].state == TrialState.COMPLETE and good[0].user_attrs["budget"] == 4
    assert sorted(good[0].intermediate_values) == [1, 2, 3, 4]
    assert good[0].value == good[0].intermediate_values[4]
    assert pruned, "ASHA must stop a handicapped trial that reached a rung after a better one"
    for trial in pruned:
        assert trial.user_attrs["budget"] < trial.user_attrs["max_budget"] == 4
        assert sorted(trial.intermediate_values) == list(range(1, trial.user_attrs["budget"] + 1))
        assert trial.params["handicap"] == 0.5
    assert store.counted_trials(study) == 4
    assert study.user_attrs["config"]["data"] == {"kind": "vtab1k", "task": "a"}
    assert "val_loss" in good[0].user_attrs["metrics"]


def test_nan_loss_is_fail_with_reason_and_the_study_goes_on(sqlite_url):
    doc = toy_study("nan", params={"nan_at_epoch": {"choice": [0, 2]}},
                    warm_start=[{"nan_at_epoch": 2}, {"nan_at_epoch": 0}, {"nan_at_epoch": 0}],
                    budget={"n_trials": 3})
    study = _run(doc, sqlite_url)["a"]
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1 and failed[0].params["nan_at_epoch"] == 2
    assert "FloatingPointError" in failed[0].user_attrs["fail_reason"]
    assert failed[0].intermediate_values == {1: pytest.approx(failed[0].intermediate_values[1])}
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert store.state_counts(study)["finished"] == 3


def test_resume_continues_to_the_total_and_refuses_a_changed_space(sqlite_url):
    doc = toy_study("resume", budget={"n_trials": 3})
    first = _run(doc, sqlite_url)["a"]
    before = {t.number: (t.state, t.value, t.params) for t in first.get_trials()}
    assert len(before) == 3

    again = _run(doc, sqlite_url)["a"]  # n_trials is a total: nothing more to do
    assert len(again.get_trials()) == 3

    study = _run(doc, sqlite_url, n_trials=5)["a"]
    after = {t.number: (t.state, t.value, t.params) for t in study.get_trials()}
    assert len(after) == 5 and {n: after[n] for n in before} == before

    changed = toy_study("resume", params={"lr": {"float": [0.01, 2.0], "log": True},
                                          "width": {"choice": [4, 8, 16]}}, budget={"n_trials": 6})
    with pytest.raises(UserError, match=r"another search space .*changed: lr.*--allow-space-change"):
        _run(changed, sqlite_url)
    assert len(optuna.load_study(study_name="resume/a", storage=sqlite_url).trials) == 5

    other_method = toy_study("resume", method="lora", budget={"n_trials": 6})
    with pytest.raises(UserError, match="method genft -> lora"):
        _run(other_method, sqlite_url)

    choices = toy_study("resume", params={"lr": {"float": [0.01, 1.0], "log": True},
                                          "width": {"choice": [4, 8]}}, budget={"n_trials": 6})
    with pytest.raises(UserError, match="width changed type or choices"):
        _run(choices, sqlite_url, allow_space_change=True)

    study = _run(changed, sqlite_url, allow_space_change=True)["a"]
    assert len(study.get_trials()) == 6
    assert study.user_attrs["space"]["lr"]["attributes"]["high"] == 2.0


def test_grid_over_ablation_and_seed_with_fifo(sqlite_url):
    grid = {"ablation": {"choice": ["full", "without_shared"]}, "seed": {"choice": [1, 2]}}
    doc = toy_study("grid", params=grid,
                    fixed={"epochs": 2, "lr": 0.1}, sampler={"name": "grid"}, scheduler={"name": "fifo"},
                    budget={"n_trials": 10})
    study = _run(doc, sqlite_url)["a"]
    combos = sorted((t.params["ablation"], t.params["seed"]) for t in study.get_trials())
    assert combos == [("full", 1), ("full", 2), ("without_shared", 1), ("without_shared", 2)]
    assert set(_states(study)) == {TrialState.COMPLETE}


def test_several_objectives(sqlite_url):
    doc = toy_study("multi", objective=[{"metric": "val_top1", "direction": "maximize"},
                                        {"metric": "trainable_params", "direction": "minimize"}],
                    sampler={"name": "nsga2", "seed": 0}, budget={"n_trials": 3})
    study = _run(doc, sqlite_url)["a"]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    for trial in complete:
        width = trial.params["width"]
        assert trial.values[1] == 8 * width + width + width * 3 + 3  # the MLP's parameter count


def test_paper_warm_start_is_the_first_trial(sqlite_url):
    doc = toy_study("warm", data={"kind": "vtab1k", "tasks": ["dsprites_loc"]}, space="paper", params={},
                    fixed={"epochs": 1}, warm_start="paper", budget={"n_trials": 1})
    study = _run(doc, sqlite_url)["dsprites_loc"]
    first = study.get_trials()[0]
    paper = paper_setting("vtab1k", "dsprites_loc")
    expected = {k: v for k, v in paper.items() if k in first.params}
    assert expected and first.params == expected
    assert first.params["shared_dim"] == 100 and first.params["specific_dim"] == 0
    assert "init_a" not in first.params  # conditional on specific_dim > 0


def test_median_stopping_without_a_known_budget_is_pruned(sqlite_url):
    """No `epochs` anywhere: the scheduler's STOP decision alone marks the trial PRUNED."""
    doc = toy_study("median", params={"handicap": {"choice": [0.0, 0.5]}}, fixed={},
                    warm_start=[{"handicap": 0.0}, {"handicap": 0.5}],
                    scheduler={"name": "median", "grace_period": 1, "min_samples_required": 1},
                    budget={"n_trials": 2},
                    # one trial at a time, as in the ASHA test: the rule then always has the good
                    # trial's curve to compare with, whatever the machine's load
                    resources={"cpu": float(os.cpu_count() or 1)})
    study = _run(doc, sqlite_url)["a"]
    by_handicap = {t.params["handicap"]: t for t in study.get_trials()}
    assert by_handicap[0.0].state == TrialState.COMPLETE and by_handicap[0.0].user_attrs["budget"] == 4
    assert by_handicap[0.5].state == TrialState.PRUNED and by_handicap[0.5].user_attrs["budget"] < 4


def test_timeout_fails_and_requeues_unfinished_trials(sqlite_url):
    doc = toy_study("timeout", fixed={"epochs": 4, "sleep": 1.0},
                    budget={"n_trials": 4, "timeout": "5s"})
    study = _run(doc, sqlite_url)["a"]
    states = _states(study)
    assert TrialState.RUNNING not in states
    cut = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert cut
    for trial in cut:
        assert trial.user_attrs["requeued"] and "budget.timeout" in trial.user_attrs["fail_reason"]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs["retry_of"] for t in waiting) == sorted(t.number for t in cut)
    assert store.state_counts(study)["finished"] < 4  # the rest is left for the next run
