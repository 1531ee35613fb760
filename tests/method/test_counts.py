"""Parameter counts: per paper task on ViT-B/16 and a RoBERTa-base-shaped model, and the per-benchmark
means of the paper's Params column (0.27M VTAB, 0.29M FGVC, 0.24M GLUE with biases)."""

from __future__ import annotations

import copy

import pytest
import torch

from genft_search.method import (
    GenFTConfig,
    attach_genft,
    attach_method,
    genft_num_parameters,
    lora_num_parameters,
)
from genft_search.paper import PAPER_PARAMS_M, paper_benchmark, paper_setting

D, L = 768, 12
COLUMNS = ["w0_ratio", "init_a", "init_b", "sigma1", "sigma2", "shared_dim", "specific_dim", "dropout",
           "scaling"]


def _paper_tasks(benchmark: str) -> dict[str, GenFTConfig]:
    """The paper's per-task GenFT settings; bias and the other options keep the family defaults."""
    return {task: GenFTConfig(**{k: paper_setting(benchmark, task)[k] for k in COLUMNS})
            for task in paper_benchmark(benchmark).tasks}


@pytest.fixture(scope="module")
def vit_b16():
    import timm

    torch.manual_seed(0)
    return timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=10)


@pytest.fixture(scope="module")
def roberta_base():
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(0)
    return RobertaForSequenceClassification(RobertaConfig(num_labels=2))


def _count_on(model, cfg: GenFTConfig) -> int:
    adapter = attach_genft(model, cfg)
    try:
        return adapter.num_parameters()
    finally:
        adapter.detach()


def _spec_formula(cfg: GenFTConfig, family: str) -> int:
    """The spec's "Parameter count", written out (full variant)."""
    a, b = cfg.shared_dim, cfg.specific_dim
    if family == "vit":
        return 4 * a * D + 2 * L * b * D
    return 4 * a * D + 4 * L * b * D + 2 * (a + b) + 2 * D  # text family default: biases on


@pytest.mark.parametrize(("benchmark", "params_m"), [("vtab1k", 0.27), ("fgvc", 0.29)])
def test_vit_counts_per_task_and_mean(vit_b16, benchmark, params_m):
    counts = []
    for task, cfg in _paper_tasks(benchmark).items():
        n = _count_on(vit_b16, cfg)
        formula = genft_num_parameters(cfg, family="vit", d=D, num_layers=L)
        assert n == _spec_formula(cfg, "vit") == formula, task
        assert n == 3072 * cfg.shared_dim + 18432 * cfg.specific_dim
        counts.append(n)
    reported = paper_benchmark(benchmark).params_m
    assert round(sum(counts) / len(counts) / 1e6, 2) == params_m == reported


def test_glue_counts_per_task_and_mean_with_biases(roberta_base):
    counts, without_bias = [], []
    for task, cfg in _paper_tasks("glue").items():
        n = _count_on(roberta_base, cfg)
        formula = genft_num_parameters(cfg, family="text", d=D, num_layers=L)
        assert n == _spec_formula(cfg, "text") == formula, task
        counts.append(n)
        without_bias.append(genft_num_parameters(GenFTConfig(**{**cfg.to_dict(), "bias": False}),
                                                 family="text", d=D, num_layers=L))
    mean = sum(counts) / len(counts)
    assert round(mean / 1e6, 2) == 0.24 == paper_benchmark("glue").params_m
    assert mean - sum(without_bias) / len(without_bias) == pytest.approx(
        sum(2 * (c.shared_dim + c.specific_dim) + 2 * D for c in _paper_tasks("glue").values()) / len(counts))


@pytest.mark.parametrize("ablation", ["without_shared", "without_specific"])
@pytest.mark.parametrize("benchmark", ["vtab1k", "fgvc"])
def test_shared_specific_ablation_means_match_paper(vit_b16, benchmark, ablation):
    """Table 12/13 Params for the dimension ablations (a = 0 / b = 0 with the fall-back of 8).

    without_row/without_column are not compared: the spec does not create the removed stage's
    parameters, while the paper's table repeats the full count."""
    counts = [_count_on(vit_b16, GenFTConfig(**{**cfg.to_dict(), "ablation": ablation}))
              for cfg in _paper_tasks(benchmark).values()]
    assert round(sum(counts) / len(counts) / 1e6, 2) == PAPER_PARAMS_M[benchmark][ablation]


@pytest.mark.parametrize("ablation", ["without_row", "without_column"])
def test_stage_ablation_counts_one_stage(vit_b16, ablation):
    cfg = GenFTConfig(shared_dim=40, specific_dim=3, ablation=ablation)
    n = _count_on(vit_b16, cfg)
    assert n == 2 * 40 * D + 2 * L * 3 * D == genft_num_parameters(cfg, family="vit", d=D, num_layers=L)


def test_lora_counts_match_paper_on_vit_b16(vit_b16):
    """The paper's LoRA row (0.29M): rank 8 on q and v of ViT-B/16, A and B per projection."""
    adapter = attach_method("lora", copy.deepcopy(vit_b16), {"lora_r": 8})
    assert adapter.num_parameters() == lora_num_parameters(8, d=D, num_layers=L) == 294912
    assert lora_num_parameters(4, d=384, num_layers=6, targets=3) == 6 * 3 * 2 * 4 * 384
