"""``export_trials`` (``genft-search export``) from the store's records, and the project's one LaTeX
escaper and table layout."""

from __future__ import annotations

import csv
import json

import optuna
import pytest

from genft_search.errors import UserError
from genft_search.report import booktabs, export_trials, latex_escape
from tests.support.mixed_study import make_mixed_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('export') / 's.db'}"
    make_mixed_study(url)
    return url


@pytest.fixture(scope="module")
def study(url: str) -> optuna.Study:
    return optuna.load_study(study_name="exp/task_a", storage=url)


def test_csv_and_json_carry_every_trial(study: optuna.Study) -> None:
    rows = list(csv.DictReader(export_trials(study, "csv").splitlines()))
    assert [r["state"] for r in rows] == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    assert rows[2]["fail_reason"] == "FloatingPointError: nan" and rows[0]["budget"] == "4"
    assert rows[2]["value"] == "" and rows[2]["params_act_fn"] == "x&y#z"
    payload = json.loads(export_trials(study, "json"))
    assert payload["study"] == "exp/task_a" and payload["directions"] == ["maximize"]
    assert len(payload["trials"]) == 4 and payload["trials"][2]["value"] is None


def test_latex_is_a_booktabs_table_of_the_finished_trials(study: optuna.Study) -> None:
    latex = export_trials(study, "latex")
    lines = latex.splitlines()
    assert lines[:3] == ["% trials of study exp/task_a", "\\begin{tabular}{llllll}", "\\toprule"]
    assert lines[3] == "number & state & value & budget & lr & act\\_fn \\\\"
    assert lines[5:8] == [
        "0 & COMPLETE & 0.5 & 4 & 0.125 & a\\_b \\\\",
        "1 & PRUNED & 0.1 & 1 & 0.25 & 50\\% \\\\",
        "3 & COMPLETE & 0.8 & 4 & 0.5 & a\\_b \\\\",
    ]
    assert lines[-2:] == ["\\bottomrule", "\\end{tabular}"] and "FloatingPointError" not in latex


def test_unknown_format_is_one_user_error(study: optuna.Study) -> None:
    with pytest.raises(UserError, match=r"unknown format 'xml'; expected csv, json or latex"):
        export_trials(study, "xml")


def test_latex_escape_covers_every_special_character() -> None:
    assert latex_escape("a_b 50% x&y #1 $5 {c} ~ ^ \\") == (
        "a\\_b 50\\% x\\&y \\#1 \\$5 \\{c\\} \\textasciitilde{} \\textasciicircum{} \\textbackslash{}"
    )
    assert latex_escape(0.25) == "0.25" and latex_escape("plain") == "plain"


def test_booktabs_blocks_are_separated_by_midrules() -> None:
    text = booktabs("c", "lr", ["a", "b"], [["1", "2"]], [["x", ""]])
    assert text == (
        "% c\n\\begin{tabular}{lr}\n\\toprule\na & b \\\\\n\\midrule\n1 & 2 \\\\\n\\midrule\nx & \\\\\n"
        "\\bottomrule\n\\end{tabular}\n"
    )


def test_cli_export_prints_it(url: str, study: optuna.Study, capsys) -> None:
    from genft_search.cli import main

    for fmt in ("csv", "latex"):
        assert main(["export", "exp", "--format", fmt, "--storage", url]) == 0
        assert capsys.readouterr().out == export_trials(study, fmt)
