"""Benchmark-only reference GenFT implementations for timm ViTs, written the slow ways on purpose.

Both follow ``docs/method.md`` exactly (same parameters, same ΔW as
``genft_search.method``) but pay the costs the library avoids, so the benchmark can show what the
library's design buys:

- ``unfused``: one generator call per adapted matrix (q and v of every block, 2·L calls), and ΔW
  applied as a separate ``x·ΔW`` matmul added to the frozen layer's output, as the authors' ViT
  code does.
- ``naive``: as ``unfused``, but each stage materialises the d × d matrix U_k = U2 U1ᵀ
  (= Q_k P_k + B A) before applying it, as in the paper's Algorithm 1 (O(d³) per stage). That
  product exists only when σ1 (the activation between down and up projection) is the identity.

Nothing here is used by the package; it lives beside the benchmark so the comparison is honest
about what "unfused" and "naive" mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MODES", "ReferenceGenFT", "ReferenceSettings", "attach_reference", "trainable"]

MODES = ("unfused", "naive")

_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "identity": lambda x: x,
}


@dataclass(frozen=True)
class ReferenceSettings:
    """The generator options the references support (bias off, ablation ``full``)."""

    shared_dim: int = 82
    specific_dim: int = 2
    sigma1: str = "identity"
    sigma2: str = "identity"
    w0_ratio: float = 1.0
    scaling: float = 1.0
    dropout: float = 0.1
    ratio_on: str = "generator"  # timm ViT default of the spec
    delta_layout: str = "transposed"  # timm ViT default of the spec

    def __post_init__(self) -> None:
        for field in ("sigma1", "sigma2"):
            if getattr(self, field) not in _ACTIVATIONS:
                raise ValueError(f"{field}: expected one of {sorted(_ACTIVATIONS)}")
        if self.ratio_on not in ("w0", "generator"):
            raise ValueError("ratio_on: expected 'w0' or 'generator'")
        if self.delta_layout not in ("linear", "transposed"):
            raise ValueError("delta_layout: expected 'linear' or 'transposed'")
        if self.shared_dim + self.specific_dim <= 0:
            raise ValueError("shared_dim/specific_dim: a + b must be positive")


class ReferenceGenFT(nn.Module):
    """Shared P_k/Q_k and per-block (A, B); ``generate`` is one generator call for one matrix."""

    def __init__(self, settings: ReferenceSettings, d: int, blocks: int, mode: str) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
        if mode == "naive" and settings.sigma1 != "identity":
            raise ValueError("sigma1: the naive U = U2 U1ᵀ form exists only for sigma1 = identity")
        self.settings, self.mode, self.d = settings, mode, d
        a, b = settings.shared_dim, settings.specific_dim
        self.p1, self.p2 = nn.Parameter(torch.empty(a, d)), nn.Parameter(torch.empty(a, d))
        self.q1, self.q2 = nn.Parameter(torch.empty(d, a)), nn.Parameter(torch.empty(d, a))
        self.a = nn.ParameterList(nn.Parameter(torch.empty(b, d)) for _ in range(blocks))
        self.b = nn.ParameterList(nn.Parameter(torch.empty(d, b)) for _ in range(blocks))
        with torch.no_grad():
            for t in (self.p1, self.p2, self.q1, self.q2):
                nn.init.trunc_normal_(t, std=0.02)
            for t in (*self.a, *self.b):
                nn.init.kaiming_uniform_(t, a=math.sqrt(5))
        self._act1 = _ACTIVATIONS[settings.sigma1]
        self._act2 = _ACTIVATIONS[settings.sigma2]

    @torch.no_grad()
    def load_factors(self, p1: Tensor, q1: Tensor, p2: Tensor, q2: Tensor, a: Tensor, b: Tensor) -> None:
        """Copy factor values (``a`` stacked (blocks, b, d), ``b`` stacked (blocks, d, b))."""
        for dst, src in ((self.p1, p1), (self.q1, q1), (self.p2, p2), (self.q2, q2)):
            dst.copy_(src)
        for i in range(len(self.a)):
            self.a[i].copy_(a[i])
            self.b[i].copy_(b[i])

    def _stage(self, x: Tensor, p: Tensor, q: Tensor, block: int) -> Tensor:
        """S_k(X) for one matrix, rows of ``x`` as samples."""
        s = self.settings
        g = s.w0_ratio if s.ratio_on == "generator" else 1.0
        down = torch.cat([p, self.a[block]], dim=0) * g  # (a + b, d): U1 (shared | specific)
        up = torch.cat([q, self.b[block]], dim=1) * g  # (d, a + b): U2 (shared | specific)
        if self.mode == "naive":
            u = up @ down  # the d × d U = U2 U1ᵀ of Algorithm 1 (Q P + B A)
            out = self._act2(x @ u.T)
        else:
            out = self._act2(self._act1(x @ down.T) @ up.T)
        return F.dropout(out, s.dropout, training=self.training) if s.dropout > 0 else out

    def generate(self, w0: Tensor, block: int) -> Tensor:
        """Y = s · S_2(S_1(W0')ᵀ) for one square frozen matrix (the authors' per-layer call)."""
        s = self.settings
        x = w0 * s.w0_ratio if s.ratio_on == "w0" else w0
        y = self._stage(self._stage(x, self.p1, self.q1, block).T, self.p2, self.q2, block)
        return y * s.scaling

    def layer_matrix(self, w0: Tensor, block: int) -> Tensor:
        """M with ``h = x W0ᵀ + x M``: Y itself for the transposed layout, Yᵀ for the linear one."""
        y = self.generate(w0, block)
        return y if self.settings.delta_layout == "transposed" else y.T

    def delta_weights(self, model: nn.Module) -> dict[str, Tensor]:
        """ΔW per fused qkv weight (3d × d, k rows zero), keyed by the model's original names."""
        out: dict[str, Tensor] = {}
        for i, blk in enumerate(model.blocks):
            w = blk.attn.qkv.base.weight
            d = self.d
            delta = torch.zeros_like(w)
            delta[:d] = self.layer_matrix(w[:d], i).T
            delta[2 * d:] = self.layer_matrix(w[2 * d:], i).T
            out[f"blocks.{i}.attn.qkv.weight"] = delta
        return out


class _ReferenceQKV(nn.Module):
    """Wraps a block's fused qkv: frozen output plus separate ``x·ΔW`` for the q and v rows."""

    def __init__(self, base: nn.Linear, owner: ReferenceGenFT, block: int) -> None:
        super().__init__()
        self.base = base
        self.block = block
        object.__setattr__(self, "_owner", owner)  # not a submodule: its parameters live once

    def forward(self, x: Tensor) -> Tensor:
        owner: ReferenceGenFT = self._owner
        d = owner.d
        w = self.base.weight
        out = self.base(x)
        out[..., :d] += x @ owner.layer_matrix(w[:d], self.block)
        out[..., 2 * d:] += x @ owner.layer_matrix(w[2 * d:], self.block)
        return out


def attach_reference(model: nn.Module, mode: str, settings: ReferenceSettings) -> ReferenceGenFT:
    """Freeze ``model`` (a timm VisionTransformer) but its head and wrap every block's qkv.

    The returned module is registered on the model as ``genft_reference``; its ``parameters()``
    are the reference's own trainable parameters (head excluded).
    """
    blocks = list(model.blocks)
    d = blocks[0].attn.qkv.in_features
    for blk in blocks:
        if blk.attn.qkv.out_features != 3 * d:
            raise ValueError("model: expected timm ViT blocks with a fused (3d × d) qkv Linear")
    ref = ReferenceGenFT(settings, d, len(blocks), mode)  # validates before the model is touched
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.get_classifier().parameters():
        p.requires_grad_(True)
    for i, blk in enumerate(blocks):
        blk.attn.qkv = _ReferenceQKV(blk.attn.qkv, ref, i)
    model.genft_reference = ref
    return ref


def trainable(model: nn.Module) -> Iterator[nn.Parameter]:
    """The parameters an optimiser gets (reference factors and head)."""
    return (p for p in model.parameters() if p.requires_grad)
