"""The cross-task atlas in the report of a study file with several tasks: PED-ANOVA importance per
hyperparameter and task, medians over tasks with a 90 % bootstrap interval, rank correlation between
tasks; recomputed here from the store and checked in a headless Chromium."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
from scipy.stats import spearmanr

from genft_search.report import write_report
from genft_search.report._atlas import cross_task_atlas
from tests.support.search_studies import make_search_study

TASKS = {"dtd": 3, "kitti": 4, "dmlab": 5}  # task -> sampler seed, so the tasks' studies differ


@pytest.fixture(scope="module")
def multi_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('atlas') / 'studies.db'}"
    for task, seed in TASKS.items():
        make_search_study(url, name="multi", task=task, seed=seed, n_trials=20)
    return url


def _studies(url: str) -> list[optuna.Study]:
    return [optuna.load_study(study_name=f"multi/{t}", storage=url) for t in TASKS]


def test_atlas_figures_recomputed_from_the_store(multi_url: str) -> None:
    studies = _studies(multi_url)
    atlas = cross_task_atlas(studies)
    assert sorted(atlas.tasks) == sorted(TASKS) and not atlas.skipped
    for study in studies:
        task = study.user_attrs["task"]
        expected = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(), normalize=True)
        assert atlas.importance[task] == pytest.approx(dict(expected))
    for param, (median, low, high) in atlas.medians.items():
        values = [atlas.importance[t][param] for t in atlas.tasks if param in atlas.importance[t]]
        assert median == pytest.approx(float(np.median(values)))
        assert min(values) <= low <= median <= high <= max(values)
    assert [atlas.medians[p][0] for p in atlas.params] == sorted((m for m, _, _ in atlas.medians.values()),
                                                                reverse=True)
    a, b = atlas.tasks[:2]
    common = sorted(set(atlas.importance[a]) & set(atlas.importance[b]))
    rho = spearmanr([atlas.importance[a][k] for k in common], [atlas.importance[b][k] for k in common])
    assert atlas.correlation[0][1] == pytest.approx(rho.statistic)
    assert atlas.correlation[0][0] == 1.0 and atlas.correlation[1][0] == atlas.correlation[0][1]


def test_a_single_task_has_no_atlas(multi_url: str, tmp_path: Path) -> None:
    page = write_report("multi/dtd", storage=multi_url, out_dir=tmp_path, png=False).read_text()
    assert "Cross-task atlas" not in page


@pytest.mark.slow
def test_the_report_shows_the_atlas_in_a_browser(multi_url: str, chromium: str, tmp_path: Path) -> None:
    from tests.report.test_report_browser import _open

    page = write_report("multi", storage=multi_url, out_dir=tmp_path, png=False)
    text = page.read_text()
    for title in ("Cross-task atlas: multi", "Importance per task", "Median importance over tasks",
                  "Rank correlation between tasks", "median [90% interval]"):
        assert title in text
    atlas = cross_task_atlas(_studies(multi_url))
    top = atlas.params[0]
    median, low, high = atlas.medians[top]
    assert f"<td>{top}</td><td>{median:.2f} [{low:.2f}, {high:.2f}]</td>" in text
    problems, svgs, console = _open(chromium, page, tmp_path)
    assert problems == [] and "Uncaught" not in console
    assert svgs >= 3 + 3 * 8  # the atlas's three figures and each study's own
