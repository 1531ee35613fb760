"""``scheduler: {name: one_epoch_topk, k: K}``: every configuration one epoch, the best K to the end."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from genft_search import store
from genft_search.config import parse_study_config
from genft_search.errors import UserError
from genft_search.tune import OneEpochTopK, plan_study, run_study
from tests.support.engine import toy_study


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_topk_keeps_exactly_k_to_the_end(sqlite_url: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENFT_RUNS_DIR", str(tmp_path / "runs"))
    doc = toy_study("topk", storage=sqlite_url, sampler={"name": "random", "seed": 3},
                    scheduler={"name": "one_epoch_topk", "k": 2}, fixed={"epochs": 3},
                    budget={"n_trials": 6}, resources={"cpu": 1})
    study = run_study(parse_study_config(doc, "study.yaml"), progress=False)["a"]
    trials = study.get_trials()
    full = [t for t in trials if t.state == TrialState.COMPLETE]
    cut = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(trials) == 6 and len(full) == 2 and len(cut) == 4
    assert all(t.user_attrs[store.ATTR_BUDGET] == 3 for t in full)
    assert all(t.user_attrs[store.ATTR_BUDGET] == 1 for t in cut)
    # the kept ones are the best after the first epoch
    assert min(t.intermediate_values[1] for t in full) >= max(t.intermediate_values[1] for t in cut)


def _plan(scheduler: dict, **overrides):
    doc = toy_study("topk", scheduler=scheduler, **overrides)
    return plan_study(parse_study_config(doc, "study.yaml"), check_data=False)


def test_topk_is_built_on_the_epoch() -> None:
    scheduler = _plan({"name": "one_epoch_topk", "k": 3}).scheduler()
    assert isinstance(scheduler, OneEpochTopK) and scheduler.kept is None
    assert scheduler._time_attr == "epoch" and scheduler._k == 3


@pytest.mark.parametrize("scheduler, extra, message", [
    ({"name": "one_epoch_topk"}, {}, "study.yaml: scheduler: one_epoch_topk needs k; expected scheduler.k"),
    ({"name": "one_epoch_topk", "k": 0}, {}, "study.yaml: scheduler: one_epoch_topk: k must be an integer "
                                             ">= 1, got 0"),
    ({"name": "one_epoch_topk", "k": 2}, {"fixed": {}}, "study.yaml: scheduler: one_epoch_topk needs the "
                                                       "epochs; expected fixed.epochs"),
    ({"name": "one_epoch_topk", "k": 2, "first": 9}, {}, "study.yaml: scheduler: first 9 exceeds the 4 "
                                                         "epochs; expected first <= fixed.epochs"),
    ({"name": "one_epoch_topk", "k": 2, "eta": 3}, {}, "study.yaml: scheduler: unknown option 'eta'; "
                                                       "expected one of k, first"),
])
def test_bad_topk_options_are_one_line(scheduler: dict, extra: dict, message: str) -> None:
    with pytest.raises(UserError) as info:
        _plan(scheduler, **extra)
    assert str(info.value) == message or str(info.value).startswith(message)
