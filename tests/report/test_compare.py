"""``genft-search compare``: every cell, mean, cost, interval and test recomputed from the stored studies
(independently of the code under test), the same numbers in every output, one-line refusals."""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from pathlib import Path

import pytest
from scipy import stats as sp

from genft_search.cli import main
from genft_search.paper import paper_result
from genft_search.report import compare_studies, comparison_markdown
from genft_search.report._compare_out import comparison_csv, comparison_latex
from tests.support.compare_studies import SPEC, VTAB, StudySpec, make_compare_studies

NAMES = ["gen", "lo", "lin", "qs", "qs_lora"]
GROUPS = {"Natural": ["cifar", "dtd", "svhn"], "Specialized": ["eurosat", "resisc45"],
          "Structured": ["dmlab", "kitti"]}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('compare') / 'studies.db'}"
    make_compare_studies(url)
    return url


@pytest.fixture(scope="module")
def comparison(url: str):
    return compare_studies(NAMES, storage=url)


def _spec(file: str, task: str) -> StudySpec:
    return next(s for s in SPEC if s.file == file and s.task == task)


def expected_cell(spec: StudySpec) -> tuple[dict[int, float], str]:
    """Seed -> value as the store holds it: test evaluations of the last-named trial, else best val."""
    evaluations = list(spec.evaluations)
    if spec.legacy is not None:
        evaluations.insert(0, {**spec.legacy, "seed": 42})
    if evaluations:
        chosen = evaluations[-1]["trial"]
        return {e["seed"]: e["metrics"]["test_top1"] for e in evaluations if e["trial"] == chosen}, "test"
    return {42: max(t.value for t in spec.trials if t.value is not None)}, "val"


def _stats(values: dict[int, float]) -> tuple[float, float | None]:
    data = list(values.values())
    return statistics.mean(data), (statistics.stdev(data) if len(data) > 1 else None)


def _csv(comparison) -> dict[tuple[str, str, str, str, str], dict[str, str]]:
    rows = csv.DictReader(io.StringIO(comparison_csv(comparison)))
    return {(r["section"], r["benchmark"], r["row"], r["versus"], r["column"]): r for r in rows}


def _bench(comparison, key: str):
    return next(b for b in comparison.benchmarks if b.key == key)


def test_tables_per_benchmark_in_the_papers_layout(comparison):
    assert [b.key for b in comparison.benchmarks] == ["vtab1k", "vtab1k-builtin"]
    vtab = _bench(comparison, "vtab1k")
    # the paper's column order (Natural, Specialized, Structured), group means, then the overall mean
    assert vtab.tasks == ["cifar", "dtd", "svhn", "eurosat", "resisc45", "dmlab", "kitti"]
    assert [g for g, _ in vtab.groups] == ["Natural", "Specialized", "Structured", "Mean"]
    assert [r.name for r in vtab.rows] == ["gen", "lo", "lin"]
    assert [r.methods for r in vtab.rows] == [("genft",), ("lora",), ("linear",)]
    builtin = _bench(comparison, "vtab1k-builtin")
    assert builtin.paper is None and "not the paper's benchmark" in builtin.title
    assert [g for g, _ in builtin.groups] == ["Mean"]


def test_every_cell_is_recomputed_from_the_store(comparison):
    table = _csv(comparison)
    markdown = comparison_markdown(comparison)
    checked = 0
    for spec in SPEC:
        key = "vtab1k-builtin" if spec.root == "builtin" else "vtab1k"
        values, source = expected_cell(spec)
        mean, std = _stats(values)
        cell = next(r for r in _bench(comparison, key).rows if r.name == spec.file).cells[spec.task]
        assert (cell.values, cell.source) == (pytest.approx(values), source), spec.name
        record = table[("result", key, spec.file, "", spec.task)]
        assert float(record["value"]) == pytest.approx(mean)
        assert record["source"] == source and int(record["n"]) == len(values)
        assert record["seeds"] == ";".join(map(str, sorted(values)))
        if std is None:
            assert record["std"] == ""
            shown = f"{mean:.2f}" + ("†" if source == "val" else "")
        else:
            assert float(record["std"]) == pytest.approx(std)
            shown = f"{mean:.2f} ± {std:.2f}"
        assert f"| {shown} |" in markdown or f"| {shown} " in markdown, shown
        checked += 1
    assert checked == len(SPEC)


def test_group_means_params_and_cost(comparison):
    table = _csv(comparison)
    for file in ("gen", "lo"):
        means = {t: _stats(expected_cell(_spec(file, t))[0])[0] for t in VTAB}
        for group, tasks in {**GROUPS, "Mean": list(VTAB)}.items():
            got = float(table[("result", "vtab1k", file, "", group)]["value"])
            assert got == pytest.approx(statistics.mean(means[t] for t in tasks)), (file, group)
    assert ("result", "vtab1k", "lin", "", "Mean") not in table  # lin lacks five of the tasks
    # params: the chosen trial's count (test metrics first, else the trial's), mean over tasks, in M
    gen_params = statistics.mean(270_000 + i for i in range(len(VTAB))) / 1e6
    assert float(table[("result", "vtab1k", "gen", "", "params_m")]["value"]) == pytest.approx(gen_params)
    assert float(table[("result", "vtab1k", "lo", "", "params_m")]["value"]) == pytest.approx(0.3)
    # GPU-h: every finished trial (pruned and failed included); lo: wall x resources.gpu (estimated)
    gen_seconds = sum(t.cost["device_seconds"] for s in SPEC if s.file == "gen" for t in s.trials)
    lo_seconds = sum(t.seconds * 0.5 for s in SPEC if s.file == "lo" for t in s.trials)
    gpu = {f: table[("result", "vtab1k", f, "", "gpu_hours")] for f in ("gen", "lo")}
    assert float(gpu["gen"]["value"]) == pytest.approx(gen_seconds / 3600)
    assert float(gpu["lo"]["value"]) == pytest.approx(lo_seconds / 3600)
    assert (gpu["gen"]["source"], gpu["lo"]["source"]) == ("measured", "estimated")
    assert int(gpu["gen"]["n"]) == 4 * len(VTAB)
    assert ("result", "vtab1k", "lin", "", "gpu_hours") not in table  # neither cost nor resources stored
    for file in ("gen", "lo", "lin"):
        wall = sum(t.seconds for s in SPEC if s.file == file for t in s.trials) / 3600
        assert float(table[("result", "vtab1k", file, "", "trial_hours")]["value"]) == pytest.approx(wall)
    qs = table[("result", "vtab1k-builtin", "qs", "", "gpu_hours")]
    assert float(qs["value"]) == 0.0 and qs["source"] == "measured"  # CPU trials: no GPU time
    markdown = comparison_markdown(comparison)
    assert f"| {lo_seconds / 3600:.2f}§ |" in markdown


def test_the_papers_row(comparison):
    paper = _bench(comparison, "vtab1k").paper
    expected = {t: paper_result("vtab1k", t)[0] for t in VTAB}
    assert paper.values == expected
    table = _csv(comparison)
    natural = statistics.mean(expected[t] for t in GROUPS["Natural"])
    record = table[("result", "vtab1k", "GenFT (paper)", "", "Natural")]
    assert float(record["value"]) == pytest.approx(natural)
    assert paper.params_m == pytest.approx(0.27)


def test_pairwise_intervals_and_wilcoxon_equal_scipy(comparison):
    table = _csv(comparison)
    diffs = []
    for task in VTAB:
        a, _ = expected_cell(_spec("gen", task))
        b, _ = expected_cell(_spec("lo", task))
        common = sorted(set(a) & set(b))
        if len(common) >= 2:
            result = sp.ttest_rel([a[s] for s in common], [b[s] for s in common])
            mean, kind = statistics.mean(a[s] - b[s] for s in common), "paired"
        else:
            result = sp.ttest_ind(list(a.values()), list(b.values()), equal_var=False)
            mean, kind = statistics.mean(a.values()) - statistics.mean(b.values()), "welch"
        ci = result.confidence_interval(0.95)
        record = table[("difference", "vtab1k", "gen", "lo", task)]
        assert float(record["value"]) == pytest.approx(mean)
        assert float(record["low"]) == pytest.approx(ci.low)
        assert float(record["high"]) == pytest.approx(ci.high)
        assert record["source"] == kind
        diffs.append(mean)
    assert table[("difference", "vtab1k", "gen", "lo", "dmlab")]["source"] == "welch"
    test = table[("wilcoxon", "vtab1k", "gen", "lo", "across tasks")]
    ranks = sp.rankdata([abs(d) for d in diffs])
    plus = sum(r for r, d in zip(ranks, diffs) if d > 0)
    assert float(test["p_value"]) == pytest.approx(sp.wilcoxon(diffs).pvalue)
    assert float(test["effect_size"]) == pytest.approx((2 * plus - ranks.sum()) / ranks.sum())
    assert test["verdict"] == "gen better (p < 0.05)"
    pair = _bench(comparison, "vtab1k").pairs[0]
    assert pair.meaningful and pair.test.n == len(VTAB)


def test_no_verdict_without_seeds_or_tasks(comparison):
    vtab = _bench(comparison, "vtab1k")
    lin = [p for p in vtab.pairs if p.b == "lin"]
    assert lin and all(p.verdict.startswith("not meaningful") and not p.meaningful for p in lin)
    (builtin,) = _bench(comparison, "vtab1k-builtin").pairs
    assert builtin.differences["dsprites_loc"] is None  # test on one side, validation on the other
    assert builtin.differences["dsprites_ori"].mean == pytest.approx(12.0 - 16.5)
    assert builtin.verdict.startswith("not meaningful") and "at least 6" in builtin.verdict
    assert "better" not in builtin.verdict
    assert "| -4.50 (val) |" in comparison_markdown(comparison)


def test_latex_is_booktabs_with_the_same_cells(comparison):
    tex = comparison_latex(comparison)
    assert tex.count(r"\toprule") == tex.count(r"\bottomrule") == 4
    mean, std = _stats(expected_cell(_spec("gen", "cifar"))[0])
    assert f"{mean:.2f} $\\pm$ {std:.2f}" in tex
    assert r"41.50$^\dagger$" in tex and r"val\_top1" in tex


def _plot_data(text: str, div: str) -> list[dict]:
    """The traces of the figure drawn into ``div``, as the page hands them to plotly.js."""
    match = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div) + r'",\s*', text)
    assert match, div
    return json.JSONDecoder().raw_decode(text, match.end())[0]


def test_cli_writes_every_file_and_the_html_holds_the_figures(url: str, tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert main(["compare", *NAMES, "--storage", url, "--out", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == [f"compare.{x}" for x in ("csv", "html", "md", "tex")]
    assert stdout == (out / "compare.md").read_text() and stdout.startswith("# genft-search compare: gen, lo")
    assert stderr.count("wrote ") == 4
    text = (out / "compare.html").read_text()
    assert text.count("/* plotly.js") == 1 and not re.search(r"<(script|link|img)[^>]+(src|href)=", text)
    for key in ("vtab1k", "vtab1k-builtin"):
        for panel in ("table", "differences", "bars", "pareto"):
            assert f"id='compare-{key}-{panel}-panel'" in text
    assert "Not available" not in text
    bars = {t["name"]: t for t in _plot_data(text, "compare-vtab1k-bars")}
    gen = bars["gen (genft)"]
    stats = [_stats(expected_cell(_spec("gen", t))[0]) for t in gen["x"]]
    assert gen["x"] == ["cifar", "dtd", "svhn", "eurosat", "resisc45", "dmlab", "kitti"]
    assert gen["y"] == pytest.approx([m for m, _ in stats])
    assert gen["error_y"]["array"] == pytest.approx([s for _, s in stats])
    pareto = _plot_data(text, "compare-vtab1k-pareto")
    points = {(t["name"], t.get("xaxis", "x")): t for t in pareto}
    gen_mean = statistics.mean(_stats(expected_cell(_spec("gen", t))[0])[0] for t in VTAB)
    assert points[("gen (genft)", "x")]["y"] == [pytest.approx(gen_mean)]
    gen_hours = sum(t.cost["device_seconds"] for s in SPEC if s.file == "gen" for t in s.trials) / 3600
    assert points[("gen (genft)", "x2")]["x"] == [pytest.approx(gen_hours)]
    assert points[("gen (genft)", "x")]["x"] == [pytest.approx(float(_csv_value(out, "gen", "params_m")))]
    # gen: fewer parameters and a higher score; lo: fewer GPU-hours; neither dominates the other
    assert {points[(n, "x")]["marker"]["symbol"] for n in ("gen (genft)", "lo (lora)")} == {"star"}
    assert ("lin (linear)", "x") not in points  # no result on every task
    assert "gen better (p &lt; 0.05)" in text


def _csv_value(out: Path, row: str, column: str) -> str:
    for record in csv.DictReader((out / "compare.csv").open()):
        if (record["benchmark"], record["row"], record["column"]) == ("vtab1k", row, column):
            return record["value"]
    raise AssertionError(column)


@pytest.mark.parametrize(("names", "expect"), [
    (["gen", "nosuch"], "compare: NAME: no study file or study 'nosuch' in"),
    (["abl"], "compare: NAME: 'abl' is an ablation; expected search studies"),
    (["studies/quickstart.yaml"], "is a file name; expected the study name it defines"),
    (["gen", "gen/cifar"], "repeats study gen/cifar of 'gen'"),
])
def test_bad_names_are_one_line_exit_2_nothing_written(url: str, tmp_path: Path, capsys, names, expect):
    out = tmp_path / "out"
    assert main(["compare", *names, "--storage", url, "--out", str(out)]) == 2
    stdout, stderr = capsys.readouterr()
    assert stdout == "" and stderr.startswith("genft-search: error: ") and stderr.count("\n") == 1
    assert expect in stderr and "Traceback" not in stderr
    assert not out.exists()


def test_out_that_is_a_file_is_one_line(url: str, tmp_path: Path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    assert main(["compare", "gen", "--storage", url, "--out", str(target)]) == 2
    stdout, stderr = capsys.readouterr()
    assert stdout == "" and stderr.count("\n") == 1 and "--out: cannot write" in stderr
    assert target.read_text() == "x"


def test_a_missing_store_is_one_line(tmp_path: Path, capsys):
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert main(["compare", "gen", "--storage", missing]) == 2
    assert "no study store" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
