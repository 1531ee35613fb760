"""ASHA with rungs from the study store: decisions count every runner's trials, and a resumed run's.

Ray's own ASHA keeps rungs in the driver's memory: a second driver, or the same command run again, would
judge its first trial against nothing. ``StoreASHA`` fills each rung from the study's intermediate values.
"""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from genft_search import store
from genft_search.config import load_study_config
from genft_search.tune import run_study
from genft_search.tune._asha import StoreASHA
from tests.support.engine import toy_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _stored(values: list[dict[int, float]]) -> list[optuna.trial.FrozenTrial]:
    study = optuna.create_study(direction="maximize")
    for curve in values:
        study.add_trial(create_trial(value=curve[max(curve)], intermediate_values=curve))
    return study.get_trials()


def _asha(shared: list[optuna.trial.FrozenTrial] | None, numbers: dict[str, int]) -> StoreASHA:
    scheduler = StoreASHA(time_attr="epoch", metric="score", mode="max", max_t=9, grace_period=1,
                          reduction_factor=3)
    if shared is not None:
        scheduler.share(lambda: shared, numbers.get)
    return scheduler


def _result(scheduler: StoreASHA, trial_id: str, epoch: int, score: float) -> str:
    trial = SimpleNamespace(trial_id=trial_id)
    if trial_id not in scheduler._trial_info:
        scheduler.on_trial_add(None, trial)
    decision: str = scheduler.on_trial_result(None, trial, {"epoch": epoch, "score": score})
    return decision


def test_a_rung_holds_the_other_drivers_trials():
    others = _stored([{1: 0.9}, {1: 0.8}, {1: 0.85}])
    assert _result(_asha(None, {}), "a", 1, 0.1) == "CONTINUE", "Ray's ASHA: an empty rung passes all"
    assert _result(_asha(others, {"a": 99}), "a", 1, 0.1) == "STOP"
    assert _result(_asha(others, {"b": 99}), "b", 1, 0.95) == "CONTINUE"


def test_this_drivers_trials_count_once_and_are_decided_once_per_rung():
    shared: list[optuna.trial.FrozenTrial] = []
    numbers = {"a": 0, "b": 1}
    scheduler = _asha(shared, numbers)
    assert _result(scheduler, "a", 1, 0.5) == "CONTINUE"
    shared.extend(_stored([{1: 0.5}]))  # trial "a" (number 0) as the store now holds it
    assert _result(scheduler, "b", 1, 0.6) == "CONTINUE"
    rung = next(recorded for milestone, recorded in scheduler._trial_info["a"]._rungs if milestone == 1)
    assert sorted(rung) == ["a", "b"], "a's store copy is not counted beside its own record"
    # a was decided at rung 1: its epoch-2 result is not judged there again (Ray's rule)
    assert _result(scheduler, "a", 2, 0.0) == "CONTINUE"


def test_refuses_several_brackets():
    with pytest.raises(ValueError, match="brackets"):
        StoreASHA(time_attr="epoch", metric="score", mode="max", max_t=9, brackets=2)


@pytest.mark.slow
def test_a_resumed_run_judges_new_trials_against_the_stored_rungs(sqlite_url, unique_name, tmp_path):
    doc = toy_study(unique_name, storage=sqlite_url, fixed={"epochs": 3},
                    scheduler={"name": "asha", "grace_period": 1, "reduction_factor": 3},
                    budget={"n_trials": 3}, resources={"cpu": 2})
    path = tmp_path / "asha.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = load_study_config(path)
    study = run_study(config, progress=False)["a"]
    distributions = {"lr": FloatDistribution(0.01, 1.0, log=True),
                     "width": CategoricalDistribution([4, 8, 16])}
    for lr in (0.5, 0.6, 0.7):  # another driver's trials, far better at every epoch
        study.add_trial(create_trial(params={"lr": lr, "width": 16}, distributions=distributions, value=0.99,
                                     intermediate_values={1: 0.99, 2: 0.99, 3: 0.99},
                                     user_attrs={store.ATTR_BUDGET: 3}))
    before = {t.number for t in study.get_trials()}
    run_study(config, n_trials=9, progress=False)
    new = [t for t in study.get_trials() if t.number not in before]
    assert len(new) == 3
    assert all(t.state == TrialState.PRUNED and t.user_attrs[store.ATTR_BUDGET] == 1 for t in new), \
        [(t.state, t.user_attrs.get(store.ATTR_BUDGET), t.intermediate_values) for t in new]
