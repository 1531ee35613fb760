"""The GenFT generator as a pure function (``docs/method.md``; arXiv 2506.11042, §3).

One stage treats the rows of a matrix X as samples and runs a two-layer bottleneck of width a + b:

    S_k(X) = Drop_p( σ2( σ1(X P_kᵀ + c_k) Q_kᵀ + σ1(X Aᵀ + c'_k) Bᵀ + e_k ) )

and the generator is ``Y = s · S_2(S_1(W0')ᵀ)``. The shared and the specific halves are concatenated
into one down and one up matrix, so a stage is exactly two thin matmuls (O(d²(a + b))); no d × d
transformation matrix is ever formed. :func:`_generate_batched` works on a stack of matrices so that
the module path (all adapted matrices of a model at once) and :func:`generate_delta` share one code;
the stages run as one autograd function with its own backward (``_generator_fn``), which reuses its
d × d buffers between training steps instead of allocating new ones for every elementwise step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from genft_search.method._generator_fn import StageSpec, Workspace, _identity, run_stages

__all__ = ["ABLATIONS", "ACTIVATIONS", "DELTA_LAYOUTS", "RATIO_ON", "generate_delta"]

def _leaky_relu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.01)


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "leaky_relu": _leaky_relu,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "identity": _identity,
}
ABLATIONS = ("full", "without_shared", "without_specific", "without_row", "without_column")
RATIO_ON = ("w0", "generator")
DELTA_LAYOUTS = ("linear", "transposed")


def _activation(name: str, field: str) -> Callable[[Tensor], Tensor]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        known = ", ".join(ACTIVATIONS)
        raise ValueError(f"{field}: unknown activation {name!r}; expected one of {known}") from None


def _rows(t: Tensor | None) -> int:
    return 0 if t is None else int(t.shape[-2])


def _cat(first: Tensor | None, second: Tensor | None, dim: int) -> Tensor | None:
    """Concatenate the shared and the specific factor; an absent or empty part is skipped."""
    parts = [t for t in (first, second) if t is not None and t.numel() > 0]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)


_HOMOGENEOUS = ("identity", "relu", "leaky_relu")  # σ(f·u) = f·σ(u) for f >= 0


def _select_bias(bias: Tensor | None, n_shared: int, n_specific: int, keep_shared: bool,
                 keep_specific: bool, field: str) -> Tensor | None:
    """Down bias layout is [shared (a) | specific (b)]; drop the entries of an ignored half."""
    if bias is None:
        return None
    n = int(bias.shape[-1])
    if n == n_shared + n_specific:
        parts = []
        if keep_shared and n_shared:
            parts.append(bias[..., :n_shared])
        if keep_specific and n_specific:
            parts.append(bias[..., n_shared:])
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
    expected = (n_shared if keep_shared else 0) + (n_specific if keep_specific else 0)
    if n == expected:
        return bias
    raise ValueError(f"{field}: length {n}; expected a + b = {n_shared + n_specific}")


def _generate_batched(
    w0: Tensor,
    p1: Tensor | None,
    q1: Tensor | None,
    p2: Tensor | None,
    q2: Tensor | None,
    a: Tensor | None,
    b: Tensor | None,
    *,
    sigma1: str,
    sigma2: str,
    w0_ratio: float,
    scaling: float,
    ratio_on: str,
    delta_layout: str,
    ablation: str,
    down_bias1: Tensor | None,
    up_bias1: Tensor | None,
    down_bias2: Tensor | None,
    up_bias2: Tensor | None,
    dropout: float,
    training: bool,
    workspace: Workspace | None = None,
    split: bool = False,
) -> Tensor | tuple[Tensor, ...]:
    """ΔW for a stack w0 (T, d, d); p_k (a, d), q_k (d, a) shared; a (T, b, d), b (T, d, b) per matrix.

    ``workspace`` lends reusable d × d buffers (the module path passes its own); ``split`` returns the
    T matrices as separate tensors (see :func:`run_stages`).
    """
    _activation(sigma1, "sigma1")
    _activation(sigma2, "sigma2")
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation: unknown value {ablation!r}; expected one of {list(ABLATIONS)}")
    if ratio_on not in RATIO_ON:
        raise ValueError(f"ratio_on: unknown value {ratio_on!r}; expected one of {list(RATIO_ON)}")
    if delta_layout not in DELTA_LAYOUTS:
        known = list(DELTA_LAYOUTS)
        raise ValueError(f"delta_layout: unknown value {delta_layout!r}; expected one of {known}")
    n_tgt = w0.shape[0]
    use_shared = ablation != "without_shared"
    use_specific = ablation != "without_specific"
    stages = {1: ablation != "without_row", 2: ablation != "without_column"}
    shared = {1: (p1, q1, down_bias1, up_bias1), 2: (p2, q2, down_bias2, up_bias2)}
    spec_a = a if use_specific and _rows(a) else None
    spec_b = b.transpose(-1, -2) if use_specific and b is not None and b.shape[-1] else None
    r = float(w0_ratio)

    def weights(k: int, first: bool) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        p, q, c, e = shared[k]  # a missing p/q means a = 0, like an empty one
        sp = p if use_shared and _rows(p) else None
        sq = q if use_shared and sp is not None else None
        down = _cat(None if sp is None else sp.expand(n_tgt, -1, -1), spec_a, dim=1)
        up_t = _cat(None if sq is None else sq.transpose(0, 1).expand(n_tgt, -1, -1), spec_b, dim=1)
        if down is None or up_t is None:
            raise ValueError("shared_dim/specific_dim: the generator has no hidden units (a + b = 0)")
        up = up_t.transpose(1, 2)
        if ratio_on == "generator":
            down, up = down * r, up * r
        elif first:  # ratio_on == "w0": (r W0) Dᵀ == W0 (r D)ᵀ, one small scale instead of a d × d one
            down = down * r
        c = _select_bias(c, _rows(p), _rows(a), use_shared, use_specific, f"down_bias{k}")
        return down, up, c, e

    use_dropout = training and dropout > 0.0
    if use_dropout and not dropout < 1.0:
        raise ValueError(f"dropout: {dropout!r} is invalid; expected a number in [0, 1)")
    p_drop = dropout if use_dropout else 0.0
    inv_keep = 1.0 / (1.0 - p_drop)
    s = float(scaling)

    def stage(k: int, first: bool, last: bool, transpose_out: bool, in_scale: float = 1.0):
        """One stage's spec and weights. Scalar factors go into the thin matrices where that is exact:
        a stage's 1/keep into the next stage's down matrix (σ1((f·X) Dᵀ + c) = σ1(X (f·D)ᵀ + c)),
        the last stage's s/keep into its up matrix and bias when σ2 is positively homogeneous."""
        down, up, c, e = weights(k, first)
        if in_scale != 1.0:
            down = down * in_scale
        scale = 1.0
        if last:
            scale = s * inv_keep
            if sigma2 in _HOMOGENEOUS and scale != 1.0:
                up = up * scale
                e = None if e is None else e * scale
                scale = 1.0
        spec = StageSpec(act1=ACTIVATIONS[sigma1], act2=ACTIVATIONS[sigma2], dropout=p_drop,
                         transpose_out=transpose_out, scale=scale)
        return spec, (down, up, c, e)

    transposed = delta_layout == "transposed"
    if stages[1] and stages[2]:  # S_1(W0') = z1 / keep; Y = S_2(S_1ᵀ); ΔW = Y or Yᵀ
        chain = [stage(1, True, False, False), stage(2, False, True, transposed, inv_keep)]
        x0 = w0
    elif stages[2]:  # without_row: Y = S_2(W0'ᵀ)
        chain, x0 = [stage(2, True, True, transposed)], w0.transpose(1, 2)
    elif stages[1]:  # without_column: Y = S_1(W0')ᵀ
        chain, x0 = [stage(1, True, True, not transposed)], w0
    else:  # pragma: no cover - ABLATIONS has no variant without both stages
        raise ValueError("ablation removes both stages")
    return run_stages([spec for spec, _ in chain], x0, [params for _, params in chain],
                      workspace=workspace, split=split)


def generate_delta(
    w0: Tensor,
    p1: Tensor | None,
    q1: Tensor | None,
    p2: Tensor | None,
    q2: Tensor | None,
    a: Tensor | None,
    b: Tensor | None,
    *,
    sigma1: str = "identity",
    sigma2: str = "identity",
    w0_ratio: float = 1.0,
    scaling: float = 1.0,
    ratio_on: str = "w0",
    delta_layout: str = "linear",
    ablation: str = "full",
    down_bias1: Tensor | None = None,
    up_bias1: Tensor | None = None,
    down_bias2: Tensor | None = None,
    up_bias2: Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
) -> Tensor:
    """ΔW (``nn.Linear`` layout, out × in) that GenFT generates from the frozen square weight ``w0``.

    Y = s · S_2(S_1(W0')ᵀ), each stage a bottleneck over the shared (P_k, Q_k) and specific (A, B) units
    (arXiv 2506.11042, §3 and Algorithm 1; the exact definition is ``docs/method.md``, "One stage" and
    "The generator"). A 0-row factor means a = 0 or b = 0; ``ablation`` ignores the parts it removes
    (p1/q1 may be None under ``without_row``, p2/q2 under ``without_column``).

    Args:
        w0: the frozen weight, (d, d).
        p1: stage 1's shared down factor P1, (a, d).
        q1: stage 1's shared up factor Q1, (d, a).
        p2: stage 2's shared down factor P2, (a, d).
        q2: stage 2's shared up factor Q2, (d, a).
        a: the layer-specific down factor A, (b, d).
        b: the layer-specific up factor B, (d, b).
        sigma1: σ1, between the down and the up projection.
        sigma2: σ2, after the up projection.
        w0_ratio: r; where it acts is ``ratio_on``.
        scaling: s.
        ratio_on: ``w0`` (W0' = r · W0, paper Eq. 5) or ``generator`` (r on every factor).
        delta_layout: ``linear`` (ΔW = Y) or ``transposed`` (ΔW = Yᵀ).
        ablation: ``full`` or a variant of paper Table 4 (``without_shared``, ``without_specific``,
            ``without_row``, ``without_column``).
        down_bias1: stage 1's hidden bias (c_1 and c'_1), (a + b,).
        up_bias1: stage 1's output bias e_1, (d,).
        down_bias2: stage 2's hidden bias, (a + b,).
        up_bias2: stage 2's output bias e_2, (d,).
        dropout: p of the inverted dropout on each stage's generated matrix.
        training: apply the dropout.

    Returns:
        ΔW, (d, d), in ``w0``'s layout.

    Raises:
        ValueError: ``w0`` is not square, or an activation, ``ratio_on``, ``delta_layout`` or
            ``ablation`` name is unknown.
    """
    if w0.dim() != 2 or w0.shape[0] != w0.shape[1]:
        raise ValueError(f"w0: shape {tuple(w0.shape)}; expected a square (d, d) matrix")
    delta = _generate_batched(
        w0.unsqueeze(0), p1, q1, p2, q2,
        None if a is None else a.unsqueeze(0),
        None if b is None else b.unsqueeze(0),
        sigma1=sigma1, sigma2=sigma2, w0_ratio=w0_ratio, scaling=scaling, ratio_on=ratio_on,
        delta_layout=delta_layout, ablation=ablation, down_bias1=down_bias1, up_bias1=up_bias1,
        down_bias2=down_bias2, up_bias2=up_bias2, dropout=dropout, training=training,
    )
    assert isinstance(delta, Tensor)  # one stack, not split
    return delta.squeeze(0)
