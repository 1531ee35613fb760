"""The per-task paper numbers (Tables 12, 13) agree with the benchmark means in the shared spec."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import yaml

from genft_search.ablation import PAPER_ABLATION, VARIANTS, paper_ablation

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "paper_configs.yaml"


@pytest.fixture(scope="module")
def spec() -> dict:
    if not SPEC.is_file():
        pytest.skip(f"the shared spec is not beside this checkout ({SPEC})")
    return yaml.safe_load(SPEC.read_text())


@pytest.mark.parametrize("kind", ["vtab1k", "fgvc"])
def test_task_means_reproduce_the_specs_ablation_means(spec: dict, kind: str) -> None:
    tasks = set(spec[kind]["tasks"])
    for variant in VARIANTS:
        table = PAPER_ABLATION[kind][variant]
        assert set(table) == tasks
        expected = spec[kind]["ablation"][variant][0]
        if (kind, variant) == ("fgvc", "full"):
            # the paper's own inconsistency: Table 13 prints Dogs 91.2, its main table 91.5 (mean 90.38)
            expected -= (91.5 - 91.2) / 5
        assert statistics.mean(table.values()) == pytest.approx(expected, abs=0.006)


def test_full_row_is_the_papers_main_result(spec: dict) -> None:
    for kind in ("vtab1k", "fgvc"):
        for task, row in spec[kind]["tasks"].items():
            top1 = row[14] if kind == "vtab1k" else row[11]
            if (kind, task) == ("fgvc", "stanford_dogs"):
                top1 = 91.2  # Table 13 (transcribed as printed) vs 91.5 in the paper's main FGVC table
            assert paper_ablation(kind, "full", task) == top1
    assert paper_ablation("glue", "full", "cola") is None
    assert paper_ablation("vtab1k", "full", "mnist") is None
