"""The paper's Fig. 2 (trainable parameters vs rank, GenFT vs LoRA, L = 12) from this project's counts.

GenFT's rank is the generator's hidden width a + b; its shared factors are paid once per model, so
its count grows with rank far more slowly than LoRA's, which pays every rank in every adapted matrix.
"""

from __future__ import annotations

import plotly.graph_objects as go

__all__ = ["parameter_count_figure"]


def parameter_count_figure(*, d: int = 768, num_layers: int = 12, max_rank: int = 96) -> go.Figure:
    """Parameters (head excluded) vs rank on a ViT-B-shaped model, counted by the method library."""
    from genft_search.method import genft_num_parameters, lora_num_parameters

    ranks = list(range(1, max_rank + 1))
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=ranks,
            y=[lora_num_parameters(r, d=d, num_layers=num_layers, targets=2) for r in ranks],
            name="LoRA (q, v), rank r",
            mode="lines",
            line={"color": "#d62728", "width": 2.5},
        )
    )
    for b, dash in ((0, "solid"), (2, "dash"), (8, "dot")):
        xs = [r for r in ranks if r > b]
        ys = [
            genft_num_parameters(
                {"shared_dim": r - b, "specific_dim": b}, family="vit", d=d, num_layers=num_layers
            )
            for r in xs
        ]
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                name=f"GenFT, a + b = r, b = {b}",
                mode="lines",
                line={"color": "#1f77b4", "dash": dash, "width": 2},
            )
        )
    if max_rank >= 84:  # the paper's most common ViT setting, for scale
        paper = genft_num_parameters(
            {"shared_dim": 82, "specific_dim": 2}, family="vit", d=d, num_layers=num_layers
        )
        figure.add_trace(
            go.Scatter(
                x=[84],
                y=[paper],
                mode="markers+text",
                text=[f"{paper / 1e6:.2f}M"],
                name="GenFT paper default (a=82, b=2)",
                textposition="top left",
                marker={"color": "#1f77b4", "size": 10, "symbol": "diamond"},
            )
        )
    figure.update_layout(
        title_text=f"# Params vs rank (L = {num_layers}, d = {d}; head excluded)",
        xaxis_title="rank (LoRA r; GenFT a + b)",
        yaxis_title="trainable parameters",
        legend={"x": 0.01, "y": 0.99},
        height=420,
    )
    return figure
