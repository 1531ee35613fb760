"""Parameter counts from the formulas of ``docs/method.md`` (reports, the paper's Fig. 2), no model needed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genft_search.method.config import GenFTConfig

__all__ = ["genft_num_parameters", "lora_num_parameters"]


def genft_num_parameters(
    config: GenFTConfig | Mapping[str, Any], *, family: str, d: int, num_layers: int
) -> int:
    """GenFT's own parameters (generator + specific, head excluded) on L layers of width d.

    Full variant, bias off: ViT (block scope) 4·a·d + 2·L·b·d; text (module scope, q and v)
    4·a·d + 4·L·b·d; biases add (a + b) + d per stage. Ablations count only what they create.
    """
    cfg = config if isinstance(config, GenFTConfig) else GenFTConfig.from_mapping(config)
    cfg = cfg.resolve(family)
    a, b = cfg.shared_dim, cfg.specific_dim
    stages = 1 if cfg.ablation in ("without_row", "without_column") else 2
    assert cfg.targets is not None  # resolve() sets them
    units = num_layers if cfg.specific_scope == "block" else num_layers * len(cfg.targets)
    total = stages * 2 * a * d + units * 2 * b * d
    if cfg.bias:
        total += stages * (a + b + d)
    return total


def lora_num_parameters(rank: int, *, d: int, num_layers: int, targets: int = 2) -> int:
    """LoRA on ``targets`` square d × d projections per layer: A (r × d) + B (d × r) each."""
    return num_layers * targets * 2 * rank * d
