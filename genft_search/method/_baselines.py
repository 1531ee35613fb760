"""Baselines behind the same adapter interface: linear probe and full fine-tuning.

LoRA, the third baseline, is in :mod:`genft_search.method._lora`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import nn

from genft_search.method._base import MethodAdapter
from genft_search.method._targets import detect_family

__all__ = ["FullFineTuneAdapter", "LinearProbeAdapter", "attach_full", "attach_linear"]


class LinearProbeAdapter(MethodAdapter):
    """Only the task head trains; the method itself has no parameters."""

    name = "linear"

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return iter(())


class FullFineTuneAdapter(MethodAdapter):
    """Everything trains; the method's own parameters are the whole backbone (head excluded)."""

    name = "full"

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        head = {id(p) for _, p in self.head_named_parameters()}
        return ((n, p) for n, p in self.model.named_parameters() if id(p) not in head)


def attach_linear(model: nn.Module, config: Mapping[str, Any] | None = None) -> LinearProbeAdapter:
    """Linear probe: freeze everything but the task head."""
    adapter = LinearProbeAdapter(model, detect_family(model))
    adapter._freeze_all_but_trainable()
    return adapter


def attach_full(model: nn.Module, config: Mapping[str, Any] | None = None) -> FullFineTuneAdapter:
    """Full fine-tuning: every parameter trains."""
    adapter = FullFineTuneAdapter(model, detect_family(model))
    adapter._freeze_all_but_trainable()
    return adapter
