"""The prior-guided sampler: concentration at high confidence, fading of a wrong prior, resume, plan."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.samplers import RandomSampler, TPESampler
from optuna.trial import TrialState

from genft_search import store
from genft_search.config import parse_study_config
from genft_search.errors import UserError
from genft_search.paper import paper_setting
from genft_search.samplers import CONFIDENCE, SOURCES, PriorSampler
from genft_search.tune import plan_study
from tests.support.engine import toy_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
PRIOR = {"lr": 1e-4, "act": "gelu", "dim": 64}


def _space(trial: optuna.Trial) -> dict:
    return {"lr": trial.suggest_float("lr", 1e-5, 1e-1, log=True),
            "act": trial.suggest_categorical("act", ["relu", "gelu", "tanh", "identity", "silu"]),
            "dim": trial.suggest_int("dim", 8, 128, step=8)}


def _objective(optimum: float):
    """Better the closer lr is to ``optimum``, reported over 3 epochs (so there are rungs)."""
    def objective(trial: optuna.Trial) -> float:
        p = _space(trial)
        quality = -abs(math.log10(p["lr"]) - math.log10(optimum)) - 0.1 * (p["act"] != "relu")
        for epoch in (1, 2, 3):
            trial.report(quality * (1 + 1 / epoch), epoch)
        return quality * (1 + 1 / 3)
    return objective


def _near(values: list[float], centre: float, decades: float) -> float:
    return sum(abs(math.log10(v) - math.log10(centre)) < decades for v in values) / len(values)


def _asked(sampler: optuna.samplers.BaseSampler, n: int) -> list[dict]:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    return [_space(study.ask()) for _ in range(n)]


def test_proposals_concentrate_near_the_prior_at_high_confidence() -> None:
    def share(confidence: str) -> tuple[float, float]:
        got = _asked(PriorSampler(PRIOR, TPESampler(seed=0), confidence=confidence, seed=0), 150)
        return _near([g["lr"] for g in got], 1e-4, 0.4), sum(g["act"] == "gelu" for g in got) / len(got)

    high_lr, high_act = share("high")
    low_lr, _ = share("low")
    rand = _asked(RandomSampler(seed=0), 150)
    random_lr = _near([g["lr"] for g in rand], 1e-4, 0.4)
    assert high_lr >= 0.7 and high_act >= 0.65
    assert random_lr < 0.3 and low_lr < high_lr - 0.15


def test_the_confidence_levels_are_the_documented_ones() -> None:
    assert {k: (c.width, c.mass, c.share) for k, c in CONFIDENCE.items()} == {
        "low": (0.30, 0.5, 0.4), "medium": (0.15, 0.7, 0.6), "high": (0.05, 0.9, 0.8)}
    for level, share in (("low", 0.4), ("medium", 0.6), ("high", 0.8)):
        state = PriorSampler(PRIOR, confidence=level, seed=0).state([])
        assert state.mix == {"prior": share, "incumbent": 0.0, "base": 1 - share} and state.rung is None


def test_draws_stay_in_range_and_on_the_step_grid() -> None:
    got = _asked(PriorSampler({"lr": 5.0, "act": "nope", "dim": 1000}, confidence="low", seed=1), 80)
    assert all(1e-5 <= g["lr"] <= 1e-1 for g in got)  # a centre outside the range moves to its edge
    assert all(g["dim"] % 8 == 0 and 8 <= g["dim"] <= 128 and isinstance(g["dim"], int) for g in got)
    assert len({g["act"] for g in got}) == 5  # a choice the space lacks: no mass anywhere in particular


def test_a_wrong_prior_fades_and_the_search_follows_the_base_sampler() -> None:
    sampler = PriorSampler(PRIOR, TPESampler(seed=0), confidence="high", seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective(optimum=3e-2), n_trials=60)
    trials = study.get_trials()
    state = sampler.state(trials, study.direction)
    assert state.rung == 3 and state.mix["prior"] < 0.15
    assert state.evidence["prior"][0] == 0  # none of the prior's trials is among the best third
    assert min(state.mix.values()) >= 0.05 - 1e-9  # the floor: a faded source can come back
    late = [t.system_attrs[store.ATTR_PRIOR_SOURCE] for t in trials[-20:]]
    assert late.count("prior") <= 6
    assert abs(math.log10(study.best_params["lr"]) - math.log10(3e-2)) < 0.5
    assert _near([t.params["lr"] for t in trials[-20:]], 1e-4, 0.4) < 0.3


def test_a_right_prior_keeps_its_share() -> None:
    sampler = PriorSampler(PRIOR, TPESampler(seed=0), confidence="high", seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_objective(optimum=1e-4), n_trials=40)
    state = sampler.state(study.get_trials(), study.direction)
    assert state.mix["prior"] + state.mix["incumbent"] > 0.7
    assert state.mix["base"] < 0.3


def _run(url: str, name: str, sampler: PriorSampler, n: int) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=url, direction="maximize", sampler=sampler,
                                load_if_exists=True)
    study.optimize(_objective(optimum=3e-3), n_trials=n)
    return study


def _record(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.params, t.system_attrs[store.ATTR_PRIOR_SOURCE], t.value) for t in study.trials]


def test_resume_continues_as_the_uninterrupted_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prior.db'}"

    def fresh() -> PriorSampler:
        return PriorSampler(PRIOR, RandomSampler(seed=3), confidence="medium", seed=3)

    whole = _run(url, "whole", fresh(), 24)
    _run(url, "cut", fresh(), 11)
    resumed_sampler = fresh()  # a new process: nothing carried over but the store
    cut = _run(url, "cut", resumed_sampler, 13)
    assert _record(cut) == _record(whole)
    assert {s for *_, s, _ in _record(whole)} >= {"prior", "base", "incumbent"}
    assert resumed_sampler.state(cut.trials, cut.direction) == fresh().state(whole.trials, whole.direction)


def test_state_is_rebuilt_from_the_store_with_tpe(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'prior.db'}"
    running = PriorSampler(PRIOR, TPESampler(seed=5), confidence="high", seed=5)
    study = _run(url, "tpe", running, 16)
    loaded = optuna.load_study(study_name="tpe", storage=url)
    fresh = PriorSampler(PRIOR, TPESampler(seed=5), confidence="high", seed=5)
    assert fresh.state(loaded.trials, loaded.direction) == running.state(study.trials, study.direction)
    for trial in loaded.trials:  # every recorded source is what the state before the trial chose
        before = [t for t in loaded.trials if t.number < trial.number]
        assert fresh.choose(trial.number, fresh.state(before, loaded.direction)) == \
            trial.system_attrs[store.ATTR_PRIOR_SOURCE]


def test_enqueued_trials_are_attributed() -> None:
    sampler = PriorSampler(PRIOR, RandomSampler(seed=0), seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({"lr": 1e-4, "act": "gelu", "dim": 64})
    study.enqueue_trial({"lr": 1e-2, "act": "relu", "dim": 8})
    study.enqueue_trial({"lr": 1e-4, "act": "gelu", "dim": 64}, user_attrs={store.ATTR_RETRY_OF: 0})
    study.optimize(_objective(1e-3), n_trials=5)
    sources = [t.system_attrs[store.ATTR_PRIOR_SOURCE] for t in study.trials]
    assert sources[:3] == ["prior", "enqueued", "prior"]
    assert all(s in SOURCES for s in sources[3:])
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


def test_the_sampler_pickles() -> None:
    import cloudpickle

    sampler = PriorSampler(PRIOR, TPESampler(seed=0), seed=0)
    copy = cloudpickle.loads(cloudpickle.dumps(sampler))
    assert copy.prior == PRIOR


# the study file ------------------------------------------------------------------------------------
def _plan(sampler: dict, **overrides):
    doc = toy_study("prior", sampler=sampler, **overrides)
    return plan_study(parse_study_config(doc, "study.yaml"), check_data=False)


def test_the_paper_setting_of_the_task_is_the_prior() -> None:
    doc = {"name": "p", "model": {"name": "builtin", "checkpoint": "builtin"},
           "data": {"kind": "vtab1k", "root": "builtin", "tasks": ["dsprites_loc", "dsprites_ori"]},
           "space": "paper", "fixed": {"epochs": 3},
           "sampler": {"name": "prior", "base": "tpe", "confidence": "high", "seed": 1}}
    plan = plan_study(parse_study_config(doc, "study.yaml"), check_data=False)
    for task in ("dsprites_loc", "dsprites_ori"):
        sampler = plan.sampler(task)
        assert isinstance(sampler, PriorSampler)
        setting = paper_setting("vtab1k", task)
        assert setting is not None
        assert sampler.prior == {k: v for k, v in setting.items() if k in plan.space}
        assert "epochs" not in sampler.prior and sampler.prior["lr"] == setting["lr"]


def test_warm_start_rows_give_the_prior() -> None:
    plan = _plan({"name": "prior", "confidence": "low"}, warm_start=[{"lr": 0.2, "width": 16}])
    sampler = plan.sampler("a")
    assert isinstance(sampler, PriorSampler) and sampler.prior == {"lr": 0.2, "width": 16}


@pytest.mark.parametrize("sampler, extra, message", [
    ({"name": "prior"}, {}, "study.yaml: sampler: prior: the paper reports no setting for vtab1k task 'a'; "
                            "expected warm_start rows"),
    ({"name": "prior", "base": "grid"}, {"warm_start": [{"lr": 0.1}]},
     "study.yaml: sampler: base: 'grid' is not a base for the prior sampler; expected one of tpe, random"),
    ({"name": "prior", "confidence": "total"}, {"warm_start": [{"lr": 0.1}]},
     "study.yaml: sampler: confidence: 'total' is unknown; expected one of low, medium, high"),
    ({"name": "prior", "n_startup": 3}, {"warm_start": [{"lr": 0.1}]},
     "study.yaml: sampler: unknown option 'n_startup'; expected one of base, confidence, seed"),
    ({"name": "prior"}, {"warm_start": [{"momentum": 0.9}]},
     "study.yaml: sampler: prior: the first warm_start row sets none of the searched parameters"),
])
def test_bad_prior_options_are_one_line(sampler: dict, extra: dict, message: str) -> None:
    with pytest.raises(UserError) as info:
        _plan(sampler, **extra)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
