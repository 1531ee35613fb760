"""The report of an ablation: table, grouped bars with error bars, Δ heatmap, all from the stored trials."""

from __future__ import annotations

import statistics
from pathlib import Path

import optuna
import pytest

from genft_search.report import report_sections, write_report


@pytest.fixture(scope="module")
def studies(store_url: str) -> list[optuna.Study]:
    return [optuna.load_study(study_name=f"abl/{t}", storage=store_url) for t in ("clevr_count", "kitti")]


def _stored(studies: list[optuna.Study]) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    for study in studies:
        for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
            out.setdefault((study.user_attrs["task"], t.params["ablation"]), []).append(t.value)
    return out


def test_ablation_section_figures_match_the_stored_trials(studies: list[optuna.Study]) -> None:
    sections = report_sections("abl", studies)
    assert [s.title for s in sections] == ["Ablation abl", "Parameters vs rank (paper Fig. 2)"]
    panels = {p.key: p for p in sections[0].panels}
    assert set(panels) == {"abl-table", "abl-bars", "abl-delta", "abl-paired", "abl_clevr_count-curves",
                           "abl_kitti-curves"}
    values = _stored(studies)
    bars = panels["abl-bars"].figure
    assert [tr.name for tr in bars.data] == [
        "full",
        "without_shared",
        "without_specific",
        "without_row",
        "without_column",
    ]
    for trace in bars.data:
        assert list(trace.x) == ["clevr_count", "kitti", "average"]
        for task, mean, err in zip(trace.x[:2], trace.y, trace.error_y.array):
            assert mean == pytest.approx(statistics.mean(values[(task, trace.name)]))
            assert err == pytest.approx(statistics.stdev(values[(task, trace.name)]))
    heat = panels["abl-delta"].figure.data[0]
    assert list(heat.y) == ["without_shared", "without_specific", "without_row", "without_column"]
    for row, variant in zip(heat.z, heat.y):
        for task, delta in zip(heat.x[:2], row):
            expected = statistics.mean(values[(task, variant)]) - statistics.mean(values[(task, "full")])
            assert delta == pytest.approx(expected)
    table = panels["abl-table"].html
    assert table.count("<tr") == 1 + 3 * 5 and "<th>paper</th>" in table  # tasks match the paper's


def test_ablation_report_file(store_url: str, tmp_path: Path) -> None:
    path = write_report("abl", storage=store_url, out_dir=tmp_path, png=False)
    text = path.read_text()
    assert path.name == "abl.html" and text.count("/* plotly.js") == 1
    for key in ("abl-table", "abl-bars", "abl-delta", "abl_kitti-curves", "params-vs-rank"):
        assert f"id='{key}-panel'" in text
    assert "Not available" not in text
    assert "search/dtd" not in text  # only the ablation's studies


def _by_seed(studies: list[optuna.Study], task: str, variant: str) -> dict[int, float]:
    study = next(s for s in studies if s.user_attrs["task"] == task)
    return {t.params["seed"]: t.value for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
            if t.params["ablation"] == variant}


def test_paired_delta_vs_full_over_seeds_with_intervals_and_marks(studies: list[optuna.Study]) -> None:
    import numpy as np
    from scipy import stats as sp

    sections = report_sections("abl", studies)
    panel = {p.key: p for p in sections[0].panels}["abl-paired"]
    traces = {tr.name: tr for tr in panel.figure.data}
    assert list(traces) == ["without_shared", "without_specific", "without_row", "without_column"]
    marks = 0
    for variant, trace in traces.items():
        assert list(trace.x) == ["clevr_count", "kitti"]
        for i, task in enumerate(trace.x):
            mine, full = _by_seed(studies, task, variant), _by_seed(studies, task, "full")
            diffs = np.array([mine[s] - full[s] for s in sorted(full)])
            if np.ptp(diffs) == 0:  # the same model (without_specific with b = 0): no spread, Δ exact
                low = high = diffs.mean()
            else:
                low, high = sp.t.interval(0.95, len(diffs) - 1, loc=diffs.mean(), scale=sp.sem(diffs))
            assert trace.y[i] == pytest.approx(diffs.mean())
            assert trace.error_y.arrayminus[i] == pytest.approx(diffs.mean() - low)
            assert trace.error_y.array[i] == pytest.approx(high - diffs.mean())
            significant = low > 0 or high < 0
            assert trace.text[i] == ("*" if significant else "")
            marks += significant
    assert panel.html.count("<tr") == 1 + 4 * 2 and panel.html.count("<td>*</td>") == marks
    assert panel.html.count("<td>paired</td>") == 8
