"""Planning notes: a study with no more trials than its sampler's random start-up is random search, and
``validate`` says so; the shipped study files set ``n_startup_trials`` deliberately and compare methods
on equal trial counts, not timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from genft_search.config import load_study_config, parse_study_config
from genft_search.tune import plan_study
from tests.support.engine import REPO, run_cli, toy_study

STUDIES = sorted((REPO / "studies").glob("*.yaml"))
SEARCHES = [p for p in STUDIES if not p.name.startswith("ablation_")]


def _notes(doc) -> list[str]:
    return plan_study(parse_study_config(doc, "s.yaml"), check_data=False).notes


def test_tpe_with_no_more_trials_than_its_startup_is_random_search():
    (note,) = [n for n in _notes(toy_study("t", budget={"n_trials": 10})) if "random search" in n]
    assert note.startswith("s.yaml: sampler: tpe draws its first 10 trials at random")
    assert "n_trials is 10" in note
    assert not [n for n in _notes(toy_study("t", budget={"n_trials": 11})) if "random search" in n]
    tuned = toy_study("t", budget={"n_trials": 10}, sampler={"name": "tpe", "n_startup_trials": 4})
    assert not [n for n in _notes(tuned) if "random search" in n]
    gp = toy_study("t", budget={"n_trials": 3}, sampler={"name": "gp", "n_startup_trials": 5})
    assert [n for n in _notes(gp) if "gp draws its first 5 trials at random" in n]
    assert not [n for n in _notes(toy_study("t", sampler={"name": "random"})) if "random search" in n]


def test_validate_prints_the_random_search_note(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(toy_study("t", budget={"n_trials": 4})))
    result = run_cli("validate", str(path), "--storage", f"sqlite:///{tmp_path / 'x.db'}", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "this study is random search" in result.stdout and not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("path", SEARCHES, ids=lambda p: p.name)
def test_shipped_studies_set_startup_trials_below_n_trials(path: Path):
    raw = yaml.safe_load(path.read_text())
    if raw["sampler"]["name"] in ("tpe", "gp"):
        assert "n_startup_trials" in raw["sampler"], f"{path.name}: n_startup_trials left at the default"
    config = load_study_config(path)
    startup = config.sampler.kwargs.get("n_startup_trials", 0)
    assert startup < config.budget.n_trials


@pytest.mark.parametrize("path", [p for p in SEARCHES if "quickstart" in p.name], ids=lambda p: p.name)
def test_quickstart_comparisons_use_equal_trial_counts_and_no_timeout(path: Path):
    raw = yaml.safe_load(path.read_text())
    assert raw["budget"] == {"n_trials": 10}
