"""Every sampler of the schema runs a real study on Ray Tune, and nothing Ray pickles holds a secret.

Ray cloudpickles the searcher into ``tuner.pkl`` and its experiment state. Optuna 5.1's NSGA-II sampler
holds a ``threading.Lock`` and the study config holds the storage URL, so the searcher must hand Ray
names only (the study store is the truth).
"""

from __future__ import annotations

import os
from pathlib import Path

import cloudpickle
import optuna
import pytest
from optuna.trial import TrialState

from genft_search import config as study_config
from genft_search.config import parse_study_config
from genft_search.store import Runner
from genft_search.tune import OptunaSearcher, plan_study, run_study
from tests.support.engine import toy_study

SECRET = "s3cr3t-pw"


def _doc(sampler: str, name: str):
    params = {"width": {"choice": [4, 8]}, "lr": {"choice": [0.1, 0.5]}} if sampler == "grid" else None
    doc = toy_study(name, sampler={"name": sampler, "seed": 0}, fixed={"epochs": 2},
                    budget={"n_trials": 2})
    if params:
        doc["params"] = params
    if sampler == "prior":  # the toy task is not the paper's: a warm_start row gives the prior point
        doc["warm_start"] = [{"lr": 0.1, "width": 8}]
    return doc


@pytest.mark.parametrize("sampler", study_config.SAMPLERS)
def test_searcher_pickles_to_names_only(sampler: str) -> None:
    doc = _doc(sampler, "pickle")
    doc["storage"] = f"postgresql://user:{SECRET}@db.example/studies?password={SECRET}"
    plan = plan_study(parse_study_config(doc, "study.yaml"))
    study = optuna.create_study(sampler=plan.sampler(), directions=plan.config.directions)
    searcher = OptunaSearcher(study, plan, "a", Runner.current())
    payload = cloudpickle.dumps(searcher)
    assert SECRET.encode() not in payload
    copy = cloudpickle.loads(payload)
    assert copy.study is None and copy.suggest("t1") == OptunaSearcher.FINISHED
    assert len(study.trials) == 0  # the detached copy asked nothing


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("sampler", study_config.SAMPLERS)
def test_every_sampler_runs_a_study(sampler: str, pg_base_url: str, unique_name: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A real run per sampler on PostgreSQL with a password in the URL (trust auth ignores it)."""
    monkeypatch.setenv("GENFT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("GENFT_KEEP_RUNS", "1")  # keep Ray's experiment folder to search it
    url = pg_base_url.replace("@", f":{SECRET}@", 1)
    doc = _doc(sampler, unique_name)
    doc["storage"] = url  # in the file, so the config Ray might pickle holds it
    study = run_study(parse_study_config(doc, "study.yaml"), progress=False)["a"]
    try:
        assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2
        written = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
        assert any(p.name == "tuner.pkl" for p in written)
        leaks = [p for p in written if SECRET.encode() in p.read_bytes()]
        assert not leaks, f"the password is in {leaks}"
    finally:
        optuna.delete_study(study_name=study.study_name, storage=pg_base_url)
        os.environ.pop("GENFT_KEEP_RUNS", None)
