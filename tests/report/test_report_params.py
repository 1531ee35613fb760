"""The paper's Fig. 2 from our counts: LoRA grows with rank in every matrix, GenFT mostly once."""

from __future__ import annotations

from genft_search.method import genft_num_parameters, lora_num_parameters
from genft_search.report import parameter_count_figure


def test_curves_are_the_method_librarys_counts() -> None:
    figure = parameter_count_figure(d=768, num_layers=12, max_rank=96)
    traces = {tr.name: tr for tr in figure.data}
    lora = traces["LoRA (q, v), rank r"]
    assert list(lora.x) == list(range(1, 97))
    assert lora.y[7] == lora_num_parameters(8, d=768, num_layers=12) == 12 * 2 * 2 * 8 * 768
    b2 = traces["GenFT, a + b = r, b = 2"]
    r = 84
    y = b2.y[list(b2.x).index(r)]
    assert y == genft_num_parameters(
        {"shared_dim": 82, "specific_dim": 2}, family="vit", d=768, num_layers=12
    )
    assert y == 3072 * 82 + 18432 * 2  # the spec's ViT formula: 4ad + 2Lbd
    b0 = traces["GenFT, a + b = r, b = 0"]
    # same rank, far fewer parameters once r > 1 (the paper's Finding 1)
    for rank, count in zip(b0.x, b0.y):
        if rank >= 2:
            assert count < lora.y[rank - 1]
    assert lora.y[63] / b0.y[63] == 12.0  # L·2 targets·2·r·d vs 4·r·d with L = 12
