"""LoRA on exactly GenFT's targets: the q and v projections, one (A, B) pair per projection.

LoRA (Hu et al. 2021, arXiv 2106.09685, §4.1; the paper's baseline [26] in arXiv 2506.11042,
Tables 1-3) adds ΔW = (α / r) · B A to a frozen W0, A (r × d) kaiming-uniform and B (d × r) zero, so
ΔW = 0 at the start. GenFT adapts the q and v row blocks of timm's fused ``qkv`` Linear and the
``query``/``value`` Linears of text encoders. PEFT's LoRA on a fused ``qkv`` would adapt k as well,
with one A shared by q, k and v; :class:`LoraQVLinear` instead wraps the Linear (as PEFT's layers do,
``base_layer``) and adds one (A, B) pair per adapted d × d row block, so the k rows stay frozen and
LoRA is what it would be on separate q and v projections. On a text encoder each of ``query`` and
``value`` is one such block.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genft_search.method._base import MethodAdapter
from genft_search.method._targets import detect_family, find_adapted_modules

__all__ = ["LoraAdapter", "LoraQVLinear", "attach_lora", "lora_settings"]

LORA_DEFAULTS = {"lora_r": 8, "lora_alpha": 8.0, "lora_dropout": 0.0}
LORA_TARGETS = ("q", "v")


# -- config -----------------------------------------------------------------------------------------
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


# -- layer ------------------------------------------------------------------------------------------
class LoraQVLinear(nn.Module):
    """A frozen Linear plus a rank-r LoRA update on some of its d × d row blocks (d = in_features).

    ``rows`` lists (target, first row) per block, e.g. (("q", 0), ("v", 2d)) for a fused qkv. Each
    block has its own ``lora_A[target]`` (r × d) and ``lora_B[target]`` (d × r), in ``nn.Linear``
    layout, and its own dropout mask on the input, as LoRA on separate projections has. Rows outside
    the blocks are never touched.
    """

    def __init__(self, base_layer: nn.Linear, rows: Sequence[tuple[str, int]], rank: int, alpha: float,
                 dropout: float) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.rows = tuple((str(t), int(s)) for t, s in rows)
        self.block = base_layer.in_features
        self.rank, self.scaling = rank, alpha / rank
        w = base_layer.weight
        self.lora_A = nn.ParameterDict({t: w.new_empty(rank, self.block) for t, _ in self.rows})
        self.lora_B = nn.ParameterDict({t: w.new_empty(self.block, rank) for t, _ in self.rows})
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged_delta: dict[str, Tensor] | None = None
        self.reset_lora_parameters()

    def reset_lora_parameters(self) -> None:
        """A kaiming-uniform (a = √5, as ``nn.Linear`` and PEFT), B zero: ΔW = 0 at the start."""
        for t, _ in self.rows:
            nn.init.kaiming_uniform_(self.lora_A[t], a=math.sqrt(5))
            nn.init.zeros_(self.lora_B[t])

    @property
    def merged(self) -> bool:
        return self.merged_delta is not None

    def delta_weight(self, target: str) -> Tensor:
        """ΔW of one block, (α / r) · B A (d × d), in the base weight's dtype."""
        delta = self.lora_B[target] @ self.lora_A[target]
        return (delta * self.scaling).to(self.base_layer.weight.dtype)

    def forward(self, x: Tensor) -> Tensor:
        out = self.base_layer(x)
        if self.merged:
            return out
        # Out of place: with a frozen input the base output is a leaf, and autograd refuses in-place
        # updates of its slices. Unadapted rows (k of a fused qkv) pass through as they are.
        pieces: list[Tensor] = []
        cursor = 0
        for t, s in self.rows:
            update = F.linear(F.linear(self.lora_dropout(x), self.lora_A[t]), self.lora_B[t])
            pieces += [out[..., cursor:s], out[..., s : s + self.block] + update * self.scaling]
            cursor = s + self.block
        pieces = [p for p in (*pieces, out[..., cursor:]) if p.shape[-1]]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=-1)

    def merge(self) -> None:
        """Add each block's ΔW into the base weight; the ΔW are kept so :meth:`unmerge` is exact."""
        if self.merged:
            return
        with torch.no_grad():
            deltas = {t: self.delta_weight(t) for t, _ in self.rows}
            for t, s in self.rows:
                self.base_layer.weight[s : s + self.block] += deltas[t]
        self.merged_delta = deltas

    def unmerge(self) -> None:
        if self.merged_delta is None:
            return
        with torch.no_grad():
            for t, s in self.rows:
                self.base_layer.weight[s : s + self.block] -= self.merged_delta[t]
        self.merged_delta = None

    def extra_repr(self) -> str:
        return f"rows={self.rows}, rank={self.rank}, scaling={self.scaling}"


# -- model ------------------------------------------------------------------------------------------
class LoraAdapter(MethodAdapter):
    """LoRA on the q/v targets of a timm ViT or a transformers text encoder (see :func:`attach_lora`)."""

    name = "lora"

    def __init__(self, model: nn.Module, family: str, layers: dict[str, LoraQVLinear], rank: int,
                 alpha: float, dropout: float) -> None:
        super().__init__(model, family)
        self.layers = layers
        self.rank, self.alpha, self.dropout = rank, alpha, dropout

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.model.named_parameters() if ".lora_" in n)

    @property
    def merged(self) -> bool:
        return any(layer.merged for layer in self.layers.values())

    def delta_weights(self) -> dict[str, Tensor]:
        """``{original weight name: ΔW of that weight's full shape}`` (detached); unadapted rows zero."""
        out = {}
        with torch.no_grad():
            for name, layer in self.layers.items():
                full = torch.zeros_like(layer.base_layer.weight)
                for t, s in layer.rows:
                    full[s : s + layer.block] = layer.delta_weight(t)
                out[f"{name}.weight"] = full
        return out

    def merge(self) -> None:
        for layer in self.layers.values():
            layer.merge()

    def unmerge(self) -> None:
        for layer in self.layers.values():
            layer.unmerge()


def attach_lora(model: nn.Module, config: Mapping[str, Any] | None = None) -> LoraAdapter:
    """Wrap GenFT's q/v targets in :class:`LoraQVLinear` (``lora_r``, ``lora_alpha``, ``lora_dropout``).

    Freezes everything but the LoRA factors and the task head. The wrapped Linear's weight becomes
    ``<name>.base_layer.weight``, as with PEFT.
    """
    rank, alpha, dropout = lora_settings(config)
    family = detect_family(model)
    layers: dict[str, LoraQVLinear] = {}
    for m in find_adapted_modules(model, family, LORA_TARGETS):
        if type(m.module) is not nn.Linear:
            raise ValueError(f"model: {m.name} is a {type(m.module).__name__}; LoRA adapts plain nn.Linear")
        parent_name, _, child = m.name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = LoraQVLinear(m.module, m.rows, rank, alpha, dropout)
        setattr(parent, child, layer)
        layers[m.name] = layer
    adapter = LoraAdapter(model, family, layers, rank, alpha, dropout)
    adapter._freeze_all_but_trainable()
    return adapter
