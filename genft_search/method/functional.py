"""The GenFT generator as a pure function (``../shared/spec/genft-method.md``).

One stage treats the rows of a matrix X as samples and runs a two-layer bottleneck of width a + b:

    S_k(X) = Drop_p( σ2( σ1(X P_kᵀ + c_k) Q_kᵀ + σ1(X Aᵀ + c'_k) Bᵀ + e_k ) )

and the generator is ``Y = s · S_2(S_1(W0')ᵀ)``. The shared and the specific halves are concatenated
into one down and one up matrix, so a stage is exactly two thin matmuls (O(d²(a + b))); no d × d
transformation matrix is ever formed. :func:`_generate_batched` works on a stack of matrices so that
the module path (all adapted matrices of a model at once) and :func:`generate_delta` share one code.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ABLATIONS", "ACTIVATIONS", "DELTA_LAYOUTS", "RATIO_ON", "generate_delta"]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "identity": lambda x: x,
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
_INT16_CODES = 1 << 16


def _dropout_mask(shape: tuple[int, ...], p: float, device: torch.device) -> tuple[Tensor, float]:
    """A boolean keep-mask for inverted dropout and its keep probability.

    Cheaper than ``F.dropout`` on large generated matrices (CPU bernoulli sampling dominated the
    generator's cost): each 64-bit random word gives four 16-bit codes, so the drop probability is
    ``p`` rounded to a multiple of 2⁻¹⁶; the returned keep probability is the exact one used. The mask
    is ``bool``, a quarter of a float mask's memory: on a ViT-B stack it is 14 MB instead of 57 MB.
    """
    n = math.prod(shape)
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    codes = words.view(torch.int16)[:n].view(shape)
    dropped = min(max(round(p * _INT16_CODES), 1), _INT16_CODES - 1)
    keep = 1.0 - dropped / _INT16_CODES
    return codes >= dropped - _INT16_CODES // 2, keep


def _stage(
    x: Tensor,
    down: Tensor,
    up: Tensor,
    down_bias: Tensor | None,
    up_bias: Tensor | None,
    sigma1: str,
    sigma2: str,
    dropout: float,
    training: bool,
    transpose_out: bool,
    out_scale: float | None,
) -> tuple[Tensor, float]:
    """One stage on a stack: x (T, n, d), down (T, h, d), up (T, d, h) -> (S(x) / f, f) (T, n, d).

    With ``transpose_out`` the result is S(x)ᵀ, computed directly in that layout (the activations
    and the dropout are elementwise, so they commute with the transpose) to avoid a strided copy.
    Scalar factors are not applied with a full pass over the d × d output when they can be folded
    into a thin matrix: the dropout's 1/keep is returned as a pending factor f for the caller (the
    next stage folds it into its down matrix), unless ``out_scale`` is given, in which case the result
    is exactly ``out_scale · S(x)`` and f = 1.
    """
    act1, act2 = _activation(sigma1, "sigma1"), _activation(sigma2, "sigma2")
    use_dropout = dropout > 0.0 and training
    pending = 1.0
    if use_dropout:
        n_tgt, n_rows, d_out = x.shape[0], x.shape[1], up.shape[1]
        shape = (n_tgt, d_out, n_rows) if transpose_out else (n_tgt, n_rows, d_out)
        mask, keep = _dropout_mask(shape, dropout, x.device)
        pending = 1.0 / keep
    if out_scale is not None:
        pending *= out_scale
        if sigma2 in _HOMOGENEOUS and pending != 1.0:  # σ2(f·u) = f·σ2(u): scale the thin up matrix
            up = up * pending
            up_bias = None if up_bias is None else up_bias * pending
            pending = 1.0
    if not transpose_out:
        hidden = torch.bmm(x, down.transpose(1, 2))
        if down_bias is not None:
            hidden = hidden + down_bias
        out = torch.bmm(act1(hidden), up.transpose(1, 2))
        if up_bias is not None:
            out = out + up_bias
    else:
        hidden = torch.bmm(down, x.transpose(1, 2))
        if down_bias is not None:
            hidden = hidden + down_bias.unsqueeze(-1)
        out = torch.bmm(up, act1(hidden))
        if up_bias is not None:
            out = out + up_bias.unsqueeze(-1)
    # The bmm result is fresh and, with σ2 = identity, saved by nothing in autograd: mask and scale it
    # in place rather than allocate more d × d stacks (each is 57 MB on ViT-B; on the CPU large
    # allocations are mapped anew each step, so every one also costs page faults).
    in_place = sigma2 == "identity"
    out = act2(out)
    scale = pending if out_scale is not None and pending != 1.0 else 1.0
    if out_scale is not None:
        pending = 1.0
    if use_dropout:
        out = out.mul_(mask) if in_place else out * mask
    if scale != 1.0:
        out = out.mul_(scale) if in_place or use_dropout else out * scale
    return out, pending


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
) -> Tensor:
    """ΔW for a stack w0 (T, d, d); p_k (a, d), q_k (d, a) shared; a (T, b, d), b (T, d, b) per matrix."""
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

    def run(k: int, x: Tensor, first: bool, transpose_out: bool, in_scale: float = 1.0,
            out_scale: float | None = None) -> tuple[Tensor, float]:
        down, up, c, e = weights(k, first)
        if in_scale != 1.0:  # σ1((f·X) Dᵀ + c) = σ1(X (f·D)ᵀ + c)
            down = down * in_scale
        return _stage(x, down, up, c, e, sigma1, sigma2, dropout, training, transpose_out, out_scale)

    transposed = delta_layout == "transposed"
    s = float(scaling)
    if stages[1] and stages[2]:
        z1, f = run(1, w0, True, False)  # S_1(W0') = f·z1
        delta, _ = run(2, z1.transpose(1, 2), False, transposed, f, s)  # Y = S_2(Z1ᵀ); ΔW = Y or Yᵀ
    elif stages[2]:  # without_row: Y = S_2(W0'ᵀ)
        delta, _ = run(2, w0.transpose(1, 2), True, transposed, 1.0, s)
    elif stages[1]:  # without_column: Y = S_1(W0')ᵀ
        delta, _ = run(1, w0, True, not transposed, 1.0, s)
    else:  # pragma: no cover - ABLATIONS has no variant without both stages
        raise ValueError("ablation removes both stages")
    return delta


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

    Shapes: w0 (d, d); p_k (a, d); q_k (d, a); a (b, d); b (d, b); down biases (a + b,); up biases
    (d,). A 0-row factor means a = 0 or b = 0; ``ablation`` ignores the parts it removes (p1/q1 may be
    None under ``without_row``, p2/q2 under ``without_column``). Dropout acts on each stage's
    generated matrix and only when ``training``.
    """
    if w0.dim() != 2 or w0.shape[0] != w0.shape[1]:
        raise ValueError(f"w0: shape {tuple(w0.shape)}; expected a square (d, d) matrix")
    return _generate_batched(
        w0.unsqueeze(0), p1, q1, p2, q2,
        None if a is None else a.unsqueeze(0),
        None if b is None else b.unsqueeze(0),
        sigma1=sigma1, sigma2=sigma2, w0_ratio=w0_ratio, scaling=scaling, ratio_on=ratio_on,
        delta_layout=delta_layout, ablation=ablation, down_bias1=down_bias1, up_bias1=up_bias1,
        down_bias2=down_bias2, up_bias2=up_bias2, dropout=dropout, training=training,
    ).squeeze(0)
