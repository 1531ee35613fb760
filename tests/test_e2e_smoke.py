"""``genft-search run studies/smoke.yaml``: a real GenFT search (built-in ViT, dSprites) end to end.

The same study file on SQLite and on PostgreSQL, then the read commands on the result.
"""

from __future__ import annotations

import csv
import io
import json

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.support.engine import REPO, run_cli

pytestmark = pytest.mark.slow
SMOKE = REPO / "studies" / "smoke.yaml"


def _check_study(study: optuna.Study, n_trials: int, max_budget: int) -> None:
    trials = study.get_trials()
    assert len(trials) == n_trials
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert any(t.state == TrialState.COMPLETE for t in trials)
    for trial in trials:
        budget = trial.user_attrs["budget"]
        assert sorted(trial.intermediate_values) == list(range(1, budget + 1))
        assert (budget == max_budget) == (trial.state == TrialState.COMPLETE)
        assert 0.0 <= trial.intermediate_values[budget] <= 100.0
        assert trial.user_attrs["metrics"]["trainable_params"] > 0
    assert study.user_attrs["method"] == "genft" and study.user_attrs["config"]["data"]["root"] == "builtin"


def test_smoke_on_sqlite(builtin_assets, tmp_path):
    smoke = yaml.safe_load(SMOKE.read_text())
    assert 6 <= smoke["budget"]["n_trials"] <= 10 and smoke["data"]["tasks"] == ["dsprites_loc"]
    url = f"sqlite:///{tmp_path / 'smoke.db'}"
    result = run_cli("run", str(SMOKE), "--storage", url, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "smoke/dsprites_loc" in result.stderr
    study = optuna.load_study(study_name="smoke/dsprites_loc", storage=url)
    _check_study(study, smoke["budget"]["n_trials"], smoke["fixed"]["epochs"])
    # the warm start is the paper's dSprites-loc setting where the smoke space contains it
    assert study.trials[0].params["sigma1"] == "identity" and study.trials[0].params["specific_dim"] == 0

    status = run_cli("status", "--storage", url)
    assert status.returncode == 0 and "smoke/dsprites_loc" in status.stdout
    exported = run_cli("export", "smoke", "--format", "csv", "--storage", url)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == len(study.trials) and "params_shared_dim" in rows[0]
    best = run_cli("best", "smoke/dsprites_loc", "--storage", url, "--json", "--evaluate-test")
    assert best.returncode == 0, best.stderr
    chosen = json.loads(best.stdout)
    assert chosen["values"][0] == pytest.approx(study.best_value)
    assert chosen["config"]["shared_dim"] == study.best_params["shared_dim"]
    assert chosen["test"]["task"] == "dsprites_loc" and 0.0 <= chosen["test"]["test_top1"] <= 100.0
    stored = optuna.load_study(study_name="smoke/dsprites_loc", storage=url).user_attrs["test_evaluation"]
    assert stored["trial"] == study.best_trial.number

    rerun = run_cli("run", str(SMOKE), "--storage", url, "--quiet", cwd=tmp_path)
    assert rerun.returncode == 0 and len(optuna.load_study(study_name="smoke/dsprites_loc",
                                                           storage=url).trials) == len(rows)


@pytest.mark.postgres
def test_smoke_on_postgres(builtin_assets, pg_url, unique_name, tmp_path):
    """The smoke study on PostgreSQL (a shorter budget: the SQLite run above covers the full one)."""
    smoke = yaml.safe_load(SMOKE.read_text())
    smoke["name"] = unique_name
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(smoke))
    secret_url = pg_url.replace("@", ":not-a-real-password@", 1) if ":" not in pg_url.split("//")[1].split(
        "@")[0] else pg_url
    result = run_cli("run", str(path), "--storage", secret_url, "--n-trials", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not-a-real-password" not in result.stdout + result.stderr
    study = optuna.load_study(study_name=f"{unique_name}/dsprites_loc", storage=pg_url)
    _check_study(study, 2, smoke["fixed"]["epochs"])
