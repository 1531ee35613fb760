"""The report of a search study: every figure present, built from the stored trials, offline."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import optuna
import pytest
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

from genft_search.errors import UserError
from genft_search.report import report_sections, write_report
from genft_search.report._meta import study_meta
from genft_search.report._study import study_section

PANELS = ("history", "importance", "parallel", "contour", "slice", "curves", "timeline", "best_vs_paper")


@pytest.fixture(scope="module")
def study(store_url: str) -> optuna.Study:
    return optuna.load_study(study_name="search/dtd", storage=store_url)


def _panels(study: optuna.Study) -> dict[str, object]:
    (section, _) = report_sections("search/dtd", [study])
    return {p.key.removeprefix("search_dtd-"): p for p in section.panels}


def test_html_is_self_contained_with_plotly_inlined_once(store_url: str, tmp_path: Path) -> None:
    path = write_report("search", storage=store_url, out_dir=tmp_path, png=False)
    assert path == tmp_path / "search.html"
    text = path.read_text()
    assert text.count("/* plotly.js") == 1 and len(text) > 3_000_000  # the library itself, inline
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", text)  # nothing fetched
    body = text.split("</head>", 1)[1]  # (plotly.js itself names a topojson CDN for geo maps: unused)
    assert "cdn" not in body.lower()
    for key in PANELS:
        assert f"id='search_dtd-{key}-panel'" in text
    assert "id='params-vs-rank-panel'" in text
    assert "Not available" not in text


def test_every_figure_is_built_from_the_stored_trials(study: optuna.Study) -> None:
    panels = _panels(study)
    assert all(panels[k].figure is not None for k in PANELS if k != "best_vs_paper")
    trials = study.get_trials(deepcopy=False)
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the fixture should have pruned trials"
    history = panels["history"].figure
    assert sum(len(tr.x) for tr in history.data if tr.mode == "markers") == len(trials) - len(pruned)
    # learning curves: one per trial with intermediate values; pruned ones styled and named as such
    curves = panels["curves"].figure
    assert len(curves.data) == len([t for t in trials if t.intermediate_values])
    styled = [tr for tr in curves.data if tr.legendgroup == "PRUNED"]
    assert len(styled) == len(pruned) and all(tr.line.dash == "dot" for tr in styled)
    assert sorted(len(tr.y) for tr in styled) == sorted(len(t.intermediate_values) for t in pruned)
    timeline = panels["timeline"].figure
    assert {tr.name for tr in timeline.data} >= {"COMPLETE", "PRUNED"}


def test_importance_side_by_side_and_contour_of_the_two_most_important(study: optuna.Study) -> None:
    panels = _panels(study)
    importance = panels["importance"].figure
    titles = [a.text for a in importance.layout.annotations]
    assert titles[:2] == ["PED-ANOVA", "fANOVA"]
    bars = [tr for tr in importance.data if tr.type == "bar"]
    assert [tr.xaxis for tr in bars] == ["x", "x2"]
    ranked = list(get_param_importances(study, evaluator=PedAnovaImportanceEvaluator()))
    contour = panels["contour"]
    assert contour.title == f"Contour: {ranked[0]} × {ranked[1]}"
    axes = {contour.figure.layout.xaxis.title.text, contour.figure.layout.yaxis.title.text}
    assert axes == set(ranked[:2])


def test_best_setting_beside_the_papers(study: optuna.Study) -> None:
    table = _panels(study)["best_vs_paper"].html
    best = study.best_trial
    assert f"<td>{best.values[0]:.4g}</td>" in table
    # dtd in the paper: shared 28, σ2 relu, 72.4 % test top-1 (Appendix B Table 8)
    assert re.search(r"<td>shared_dim</td><td>\d+</td><td>28</td>", table)
    assert "<td>relu</td>" in table and "<td>72.4</td>" in table
    assert study_meta(study).data_kind == "vtab1k"


def test_a_task_the_paper_lacks_gets_a_note_not_a_column(study: optuna.Study) -> None:
    meta = dataclasses.replace(study_meta(study), task="mnist")
    panel = next(p for p in study_section(study, meta).panels if p.key.endswith("best_vs_paper"))
    assert "72.4" not in panel.html and "<td>28</td>" not in panel.html
    assert panel.note == "The paper reports no setting for task mnist (vtab1k)."


def test_unknown_name_lists_the_studies(store_url: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no study 'nosuch'.*search/dtd"):
        write_report("nosuch", storage=store_url, out_dir=tmp_path)


@pytest.mark.slow  # kaleido starts a browser
def test_png_export_or_a_note(store_url: str, tmp_path: Path, monkeypatch, request) -> None:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        kaleido_present = False
    else:
        kaleido_present = True
    if kaleido_present:
        request.getfixturevalue("chromium")
        path = write_report("search/dtd", storage=store_url, out_dir=tmp_path / "with")
        pngs = sorted(p.name for p in (tmp_path / "with" / "search_dtd_png").glob("*.png"))
        assert "search_dtd-importance.png" in pngs and "params-vs-rank.png" in pngs and len(pngs) == 8
        assert all((tmp_path / "with" / "search_dtd_png" / p).stat().st_size > 5000 for p in pngs)
        assert "PNG copies of the 8 figures" in path.read_text()
    monkeypatch.setitem(sys.modules, "kaleido", None)  # as if it were not installed
    path = write_report("search/dtd", storage=store_url, out_dir=tmp_path / "without")
    assert "PNG export skipped: kaleido is not installed" in path.read_text()
    assert not (tmp_path / "without" / "search_dtd_png").exists()
