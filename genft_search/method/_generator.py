"""The one generator per model: shared P_k/Q_k, every (A, B) pair, and the batched forward."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genft_search.method._generator_fn import Workspace
from genft_search.method.config import GenFTConfig
from genft_search.method.functional import _generate_batched

__all__ = ["GenFTGenerator"]


def _resolved(value: str | None) -> str:
    """A family-dependent option of a resolved config (``GenFTConfig.resolve`` sets every one)."""
    assert value is not None, "GenFTGenerator needs a resolved config"
    return value


def init_matrix(t: Tensor, scheme: str) -> None:
    """Initialise one matrix in ``nn.Linear`` layout (out × in), in place, by scheme name.

    kaiming_uniform is PyTorch's ``nn.Linear`` default (a = √5, bound 1/√fan_in); normal has std 0.01;
    trunc_normal has std 0.02 (timm's ViT init).
    """
    with torch.no_grad():
        if scheme == "zeros":
            t.zero_()
        elif scheme == "kaiming_uniform":
            nn.init.kaiming_uniform_(t, a=math.sqrt(5))
        elif scheme == "xavier_uniform":
            nn.init.xavier_uniform_(t)
        elif scheme == "normal":
            nn.init.normal_(t, std=0.01)
        elif scheme == "trunc_normal":
            nn.init.trunc_normal_(t, std=0.02)
        else:
            raise ValueError(f"init: unknown scheme {scheme!r}")


class GenFTGenerator(nn.Module):
    """Generates ΔW for a stack of frozen square weights in one batched pass.

    ``target_units[t]`` says which (A, B) pair serves adapted matrix t (block or module scope). The
    pairs are stored stacked, ``a`` (units, b, d) and ``b`` (units, d, b), so that gathering them per
    target is one index_select. Parameters an ablation does not use are not created.
    """

    target_units: Tensor

    def __init__(self, config: GenFTConfig, d: int, target_units: Sequence[int]) -> None:
        super().__init__()
        if not config.is_resolved:
            raise ValueError("GenFTGenerator needs a resolved config (GenFTConfig.resolve(family))")
        self.config = config
        self.d = int(d)
        a, b = config.shared_dim, config.specific_dim
        stages = [k for k in (1, 2) if not (k == 1 and config.ablation == "without_row")
                  and not (k == 2 and config.ablation == "without_column")]
        self.stages = tuple(stages)
        units = (max(target_units) + 1) if len(target_units) else 0
        self.register_buffer("target_units", torch.as_tensor(list(target_units), dtype=torch.long),
                             persistent=False)
        for k in stages:
            if a:
                p, q = nn.Parameter(torch.empty(a, d)), nn.Parameter(torch.empty(d, a))
                init_matrix(p, _resolved(config.shared_init))
                init_matrix(q, _resolved(config.shared_init))
                self.register_parameter(f"p{k}", p)
                self.register_parameter(f"q{k}", q)
            if config.bias:
                self.register_parameter(f"down_bias{k}", nn.Parameter(torch.zeros(a + b)))
                self.register_parameter(f"up_bias{k}", nn.Parameter(torch.zeros(d)))
        if b:
            self.a = nn.Parameter(torch.empty(units, b, d))
            self.b = nn.Parameter(torch.empty(units, d, b))
            for i in range(units):
                init_matrix(self.a[i], config.init_a)
                init_matrix(self.b[i], config.init_b)
        self._workspace = Workspace()

    def _get(self, name: str) -> Tensor | None:
        return self._parameters.get(name)

    def train(self, mode: bool = True) -> GenFTGenerator:
        """Also lets go of the training passes' reusable buffers when switching to eval."""
        if not mode:
            self._workspace.clear()
        return super().train(mode)

    def forward(self, w0: Tensor, training: bool | None = None,
                split: bool = False) -> Tensor | tuple[Tensor, ...]:
        """ΔW stack (T, d, d) for the frozen stack ``w0`` (T, d, d); dropout follows ``self.training``.

        With ``split`` the T matrices come as a tuple (one autograd output each). Passes with
        gradients reuse the d × d buffers of earlier passes once nothing holds them any more.
        """
        cfg = self.config
        a = self._get("a")
        b = self._get("b")
        if a is not None and b is not None:  # both exist when specific_dim > 0
            idx = self.target_units
            a = a.index_select(0, idx)
            b = b.index_select(0, idx)
        return _generate_batched(
            w0, self._get("p1"), self._get("q1"), self._get("p2"), self._get("q2"), a, b,
            sigma1=cfg.sigma1, sigma2=cfg.sigma2, w0_ratio=cfg.w0_ratio, scaling=cfg.scaling,
            ratio_on=_resolved(cfg.ratio_on), delta_layout=_resolved(cfg.delta_layout),
            ablation=cfg.ablation,
            down_bias1=self._get("down_bias1"), up_bias1=self._get("up_bias1"),
            down_bias2=self._get("down_bias2"), up_bias2=self._get("up_bias2"),
            dropout=cfg.dropout, training=self.training if training is None else training,
            workspace=self._workspace if torch.is_grad_enabled() else None, split=split,
        )

    def extra_repr(self) -> str:
        c = self.config
        return (f"d={self.d}, shared_dim={c.shared_dim}, specific_dim={c.specific_dim}, sigma1={c.sigma1}, "
                f"sigma2={c.sigma2}, ablation={c.ablation}, targets={len(self.target_units)}")
