"""The packaged paper data (genft_search.paper): complete, self-consistent, and what every user reads."""

from __future__ import annotations

import statistics

import pytest

from genft_search import ablation, space
from genft_search.method import GenFTConfig
from genft_search.method.config import INITS
from genft_search.method.functional import ACTIVATIONS
from genft_search.paper import (
    ACTIVATION_CODES,
    INIT_CODES,
    PAPER_ABLATION,
    PAPER_PARAMS_M,
    paper_ablation,
    paper_benchmark,
    paper_result,
    paper_setting,
)
from trainables.data import glue, vtab1k

KINDS = ("vtab1k", "fgvc", "glue")
GENFT_KEYS = {"w0_ratio", "init_a", "init_b", "sigma1", "sigma2", "shared_dim", "specific_dim", "dropout",
              "scaling", "bias"}


def test_every_vtab_task_of_the_data_layer_has_the_papers_setting_and_result() -> None:
    bench = paper_benchmark("vtab1k")
    assert set(bench.tasks) == set(vtab1k.TASKS) and len(bench.tasks) == 19
    for task, (_, group) in vtab1k.TASKS.items():
        assert bench.groups[task] == group
        setting = paper_setting("vtab1k", task)
        assert GENFT_KEYS | {"lr", "weight_decay", "label_smoothing", "epochs"} <= set(setting)
        top1, measures = paper_result("vtab1k", task)
        assert 0 < top1 < 100 and measures.startswith("test top-1")


def test_glue_tasks_and_metrics_are_the_data_layers() -> None:
    tasks = paper_benchmark("glue").tasks
    assert len(tasks) == 8 and set(tasks) <= set(glue.TASKS)
    for task in tasks:
        _, measures = paper_result("glue", task)
        assert measures == f"dev {glue.TASKS[task].metric} (best epoch), RoBERTa-base"
    assert paper_result("glue", "cola") == (63.38, "dev matthews (best epoch), RoBERTa-base")
    assert len(paper_benchmark("fgvc").tasks) == 5


@pytest.mark.parametrize("kind", KINDS)
def test_settings_are_valid_genft_configs_in_project_names(kind: str) -> None:
    for task in paper_benchmark(kind).tasks:
        setting = paper_setting(kind, task)
        assert setting["init_a"] in INITS and setting["init_b"] in INITS
        assert setting["sigma1"] in ACTIVATIONS and setting["sigma2"] in ACTIVATIONS
        assert setting["bias"] is (kind == "glue")  # the authors' code default per family
        GenFTConfig.from_mapping(setting)  # raises on anything the method refuses
        assert not {"minutes", "result", "group", "num_classes", "metric", "gpu_mem_gb"} & set(setting)


def test_the_short_codes_name_the_methods_choices() -> None:
    assert set(INIT_CODES.values()) == set(INITS)
    assert set(ACTIVATION_CODES.values()) == set(ACTIVATIONS)
    assert GenFTConfig(init_a="K-U", sigma1="LR").init_a == "kaiming_uniform"  # the method accepts codes


def test_per_task_results_average_to_the_reported_means() -> None:
    for kind in KINDS:
        bench = paper_benchmark(kind)
        results = {task: paper_result(kind, task)[0] for task in bench.tasks}
        assert statistics.mean(results.values()) == pytest.approx(bench.means["average"], abs=0.006)
    vtab = paper_benchmark("vtab1k")
    for group in ("natural", "specialized", "structured"):
        top1 = [paper_result("vtab1k", t)[0] for t in vtab.tasks if vtab.groups[t] == group]
        assert statistics.mean(top1) == pytest.approx(vtab.means[group], abs=0.006)


@pytest.mark.parametrize("kind", ["vtab1k", "fgvc"])
def test_per_task_ablation_numbers_average_to_the_benchmark_means(kind: str) -> None:
    bench = paper_benchmark(kind)
    assert set(PAPER_ABLATION[kind]) == set(ablation.VARIANTS) == set(bench.ablation_means)
    for variant, table in PAPER_ABLATION[kind].items():
        assert list(table) == list(bench.tasks)
        expected = bench.ablation_means[variant]
        if (kind, variant) == ("fgvc", "full"):
            # the paper's own inconsistency: Table 13 prints Dogs 91.2, its main table 91.5 (mean 90.38)
            expected -= (91.5 - 91.2) / 5
        assert statistics.mean(table.values()) == pytest.approx(expected, abs=0.006)
    assert PAPER_PARAMS_M[kind]["full"] == bench.params_m


def test_the_full_ablation_row_is_the_papers_main_result() -> None:
    for kind in ("vtab1k", "fgvc"):
        for task in paper_benchmark(kind).tasks:
            top1 = paper_result(kind, task)[0]
            if (kind, task) == ("fgvc", "stanford_dogs"):
                top1 = 91.2  # Table 13 (as printed) vs 91.5 in the main FGVC table
            assert paper_ablation(kind, "full", task) == top1
    assert paper_ablation("glue", "full", "cola") is None
    assert paper_ablation("vtab1k", "full", "mnist") is None


def test_unknown_benchmarks_and_tasks_have_nothing() -> None:
    assert paper_setting("vtab1k", "mnist") is None and paper_result("vtab1k", "mnist") is None
    assert paper_setting("mnist", "x") is None and paper_benchmark("mnist") is None


def test_one_source_for_every_user() -> None:
    """Presets and warm starts (space), ablations and the method's codes all read this module."""
    from genft_search.method import config as method_config

    assert space.paper_setting is paper_setting
    assert ablation.PAPER_ABLATION is PAPER_ABLATION and ablation.paper_ablation is paper_ablation
    assert method_config.INIT_CODES is INIT_CODES and method_config.ACTIVATION_CODES is ACTIVATION_CODES


def test_settings_are_copies() -> None:
    paper_setting("vtab1k", "dtd")["shared_dim"] = -1
    assert paper_setting("vtab1k", "dtd")["shared_dim"] == 28
