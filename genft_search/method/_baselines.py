"""Baselines behind the same adapter interface: LoRA (HF PEFT), linear probe, full fine-tuning.

LoRA targets the same q/v projections as GenFT. On a timm ViT those live in the fused ``qkv`` Linear,
and LoRA is injected (``peft.inject_adapter_in_model``, the model object stays the caller's) on that
``qkv`` module, as is usual for timm ViTs: A is r × d and B is 3d × r per block, so q, k and v get a
rank-r update sharing A. Its parameter count, 4·r·d per block, equals LoRA on q and v separately.
On text encoders LoRA is injected on ``query`` and ``value``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import nn

from genft_search.method._base import MethodAdapter
from genft_search.method._targets import detect_family, find_adapted_modules

__all__ = ["FullFineTuneAdapter", "LinearProbeAdapter", "LoraAdapter", "attach_full", "attach_linear",
           "attach_lora"]

LORA_DEFAULTS = {"lora_r": 8, "lora_alpha": 8.0, "lora_dropout": 0.0}


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


class LoraAdapter(MethodAdapter):
    """LoRA via HF PEFT on the q/v targets (see the module docstring for timm's fused qkv)."""

    name = "lora"

    def __init__(self, model: nn.Module, family: str, rank: int, alpha: float, dropout: float) -> None:
        super().__init__(model, family)
        self.rank, self.alpha, self.dropout = rank, alpha, dropout

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.model.named_parameters() if ".lora_" in n)

    def _layers(self) -> list[nn.Module]:
        from peft.tuners.tuners_utils import BaseTunerLayer

        return [m for m in self.model.modules() if isinstance(m, BaseTunerLayer)]

    def merge(self) -> None:
        if not self._merged:
            for layer in self._layers():
                layer.merge()
        self._merged = True

    def unmerge(self) -> None:
        if self._merged:
            for layer in self._layers():
                layer.unmerge()
        self._merged = False


def _get(config: Mapping[str, Any] | None, key: str, cast: type) -> Any:
    value = (config or {}).get(key, LORA_DEFAULTS[key])
    try:
        out = cast(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key}: {value!r} is invalid; expected a {cast.__name__}") from None
    if isinstance(value, bool) or (cast is int and out != value):
        raise ValueError(f"{key}: {value!r} is invalid; expected a {cast.__name__}")
    return out


def lora_settings(config: Mapping[str, Any] | None) -> tuple[int, float, float]:
    """(rank, alpha, dropout) from a flat trial config; ``ValueError`` naming the key if invalid."""
    rank = _get(config, "lora_r", int)
    alpha = _get(config, "lora_alpha", float)
    dropout = _get(config, "lora_dropout", float)
    if rank < 1:
        raise ValueError(f"lora_r: {rank!r} is invalid; expected an integer >= 1")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"lora_dropout: {dropout!r} is invalid; expected a number in [0, 1)")
    return rank, alpha, dropout


def attach_lora(model: nn.Module, config: Mapping[str, Any] | None = None) -> LoraAdapter:
    """Inject LoRA (``lora_r``, ``lora_alpha``, ``lora_dropout``) on the q/v projections."""
    from peft import LoraConfig, inject_adapter_in_model

    rank, alpha, dropout = lora_settings(config)
    family = detect_family(model)
    names = [m.name for m in find_adapted_modules(model, family, ("q", "v"))]
    lora = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none")
    inject_adapter_in_model(lora, model)
    adapter = LoraAdapter(model, family, rank, alpha, dropout)
    adapter._freeze_all_but_trainable()
    return adapter


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
