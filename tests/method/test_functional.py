"""generate_delta against a naive re-derivation from the spec's equations, and its closed forms."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from genft_search.method import generate_delta
from genft_search.method.functional import RATIO_ON

ACTS = ["relu", "leaky_relu", "tanh", "gelu", "identity"]
ABLATIONS = ["full", "without_shared", "without_specific", "without_row", "without_column"]


def _act(name: str, x: torch.Tensor) -> torch.Tensor:
    """The activations written out by hand (leaky slope 0.01, exact erf GELU)."""
    if name == "relu":
        return torch.where(x > 0, x, torch.zeros_like(x))
    if name == "leaky_relu":
        return torch.where(x >= 0, x, 0.01 * x)
    if name == "tanh":
        return (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))
    if name == "gelu":
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2.0)))
    assert name == "identity"
    return x


def naive_delta(w0, p, q, a_mat, b_mat, *, sigma1, sigma2, r, s, ratio_on, layout, ablation, biases):
    """Spec, literally: S_k(X) = σ2(σ1(X P_kᵀ + c_k) Q_kᵀ + σ1(X Aᵀ + c'_k) Bᵀ + e_k),
    Y = s·S_2(S_1(W0')ᵀ), W0' = r·W0 (ratio on w0) or every factor times r (ratio on generator),
    ΔW = Y (linear layout) or Yᵀ (transposed layout)."""
    g = r if ratio_on == "generator" else 1.0
    w = w0 * r if ratio_on == "w0" else w0
    n_a = p[1].shape[0]
    shared = ablation != "without_shared"
    specific = ablation != "without_specific"

    def stage(k, x):
        total = torch.zeros(x.shape[0], w0.shape[1], dtype=x.dtype)
        down_bias, up_bias = biases[k] if biases else (None, None)
        c = down_bias[:n_a] if down_bias is not None else 0.0
        c_spec = down_bias[n_a:] if down_bias is not None else 0.0
        if shared:
            total = total + _act(sigma1, x @ (g * p[k]).T + c) @ (g * q[k]).T
        if specific:
            total = total + _act(sigma1, x @ (g * a_mat).T + c_spec) @ (g * b_mat).T
        if up_bias is not None:
            total = total + up_bias
        return _act(sigma2, total)

    if ablation == "without_row":
        y = s * stage(2, w.T)
    elif ablation == "without_column":
        y = s * stage(1, w).T
    else:
        y = s * stage(2, stage(1, w).T)
    return y.T if layout == "transposed" else y


def _factors(d=10, a=4, b=3, seed=0, bias=False):
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * 0.3

    w0 = rnd(d, d) * 2
    p = {1: rnd(a, d), 2: rnd(a, d)}
    q = {1: rnd(d, a), 2: rnd(d, a)}
    biases = {1: (rnd(a + b), rnd(d)), 2: (rnd(a + b), rnd(d))} if bias else None
    return w0, p, q, rnd(b, d), rnd(d, b), biases


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("layout", ["linear", "transposed"])
@pytest.mark.parametrize("ratio_on", ["w0", "generator"])
@pytest.mark.parametrize("ablation", ABLATIONS)
def test_generate_delta_matches_naive_spec(ablation, ratio_on, layout, bias):
    w0, p, q, a_mat, b_mat, biases = _factors(bias=bias)
    for sigma1, sigma2 in itertools.product(ACTS, ACTS):
        kw = dict(sigma1=sigma1, sigma2=sigma2, r=0.7, s=1.3, ratio_on=ratio_on, layout=layout,
                  ablation=ablation, biases=biases)
        expected = naive_delta(w0, p, q, a_mat, b_mat, **kw)
        bias_kw = {}
        if bias:
            bias_kw = dict(down_bias1=biases[1][0], up_bias1=biases[1][1],
                           down_bias2=biases[2][0], up_bias2=biases[2][1])
        got = generate_delta(
            w0, p[1], q[1], p[2], q[2], a_mat, b_mat, sigma1=sigma1, sigma2=sigma2, w0_ratio=0.7,
            scaling=1.3, ratio_on=ratio_on, delta_layout=layout, ablation=ablation, **bias_kw,
        )
        assert got.shape == w0.shape
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12, msg=f"{sigma1}/{sigma2}")


def _leaves(w0, p, q, a_mat, b_mat, biases):
    tensors = [w0, p[1], q[1], p[2], q[2], a_mat, b_mat]
    if biases:
        tensors += [*biases[1], *biases[2]]
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def _assert_same_grads(got, expected, leaves, msg):
    """Gradients of ``got`` and ``expected`` for one random cotangent; an unused leaf counts as zero."""
    cot = torch.randn(expected.shape, generator=torch.Generator().manual_seed(5), dtype=expected.dtype)
    ga = torch.autograd.grad(got, leaves, cot, allow_unused=True)
    gb = torch.autograd.grad(expected, leaves, cot, allow_unused=True)
    for i, (x, y, leaf) in enumerate(zip(ga, gb, leaves)):
        x = torch.zeros_like(leaf) if x is None else x
        y = torch.zeros_like(leaf) if y is None else y
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-11, msg=f"{msg}: input {i}")


ACT_PAIRS = [("identity", "identity"), ("gelu", "tanh"), ("relu", "leaky_relu"), ("tanh", "gelu")]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("layout", ["linear", "transposed"])
@pytest.mark.parametrize("ablation", ABLATIONS)
@pytest.mark.parametrize(("sigma1", "sigma2"), ACT_PAIRS)
def test_gradients_equal_autograd_through_the_naive_spec(sigma1, sigma2, ablation, layout, bias):
    """The generator's own backward gives every input (W0 included) autograd's gradient of the spec."""
    w0, p, q, a_mat, b_mat, biases = _factors(bias=bias)
    leaves = _leaves(w0, p, q, a_mat, b_mat, biases)
    lw0, lp1, lq1, lp2, lq2, la, lb = leaves[:7]
    lbias = {1: tuple(leaves[7:9]), 2: tuple(leaves[9:11])} if bias else None
    for ratio_on in RATIO_ON:
        kw = dict(sigma1=sigma1, sigma2=sigma2, ratio_on=ratio_on, ablation=ablation)
        expected = naive_delta(lw0, {1: lp1, 2: lp2}, {1: lq1, 2: lq2}, la, lb, r=0.8, s=1.3,
                               layout=layout, biases=lbias, **kw)
        bias_kw = {}
        if bias:
            bias_kw = dict(down_bias1=lbias[1][0], up_bias1=lbias[1][1],
                           down_bias2=lbias[2][0], up_bias2=lbias[2][1])
        got = generate_delta(lw0, lp1, lq1, lp2, lq2, la, lb, w0_ratio=0.8, scaling=1.3,
                             delta_layout=layout, **kw, **bias_kw)
        _assert_same_grads(got, expected, leaves, f"{sigma1}/{sigma2} {ratio_on}")


@pytest.mark.parametrize(
    ("ratio_on", "layout", "r", "s", "closed_form"),
    [
        # ViT defaults: ΔW = s r⁴ M2 W0 M1ᵀ
        ("generator", "transposed", 1.4, 0.6, lambda m, w0, r, s: s * r**4 * m[2] @ w0 @ m[1].T),
        # text defaults: ΔW = s r M1 W0ᵀ M2ᵀ
        ("w0", "linear", 0.2, 0.05, lambda m, w0, r, s: s * r * m[1] @ w0.T @ m[2].T),
    ],
    ids=["vit_defaults", "text_defaults"],
)
def test_closed_form_with_identity_activations(ratio_on, layout, r, s, closed_form):
    """Identity activations: ΔW is the closed form of the spec, with M_k = Q_k P_k + B A."""
    w0, p, q, a_mat, b_mat, _ = _factors(d=12, a=5, b=2, seed=3)
    m = {k: q[k] @ p[k] + b_mat @ a_mat for k in (1, 2)}
    got = generate_delta(w0, p[1], q[1], p[2], q[2], a_mat, b_mat, w0_ratio=r, scaling=s,
                         ratio_on=ratio_on, delta_layout=layout)
    torch.testing.assert_close(got, closed_form(m, w0, r, s), rtol=1e-10, atol=1e-12)


def test_empty_factors_mean_zero_dims():
    """0-row shared factors are a = 0, 0-row specific factors b = 0; None works for removed stages."""
    w0, p, q, a_mat, b_mat, _ = _factors(seed=5)
    no_shared = generate_delta(w0, p[1][:0], q[1][:, :0], p[2][:0], q[2][:, :0], a_mat, b_mat)
    torch.testing.assert_close(no_shared, generate_delta(w0, p[1], q[1], p[2], q[2], a_mat, b_mat,
                                                         ablation="without_shared"))
    no_spec = generate_delta(w0, p[1], q[1], p[2], q[2], a_mat[:0], b_mat[:, :0])
    torch.testing.assert_close(no_spec, generate_delta(w0, p[1], q[1], p[2], q[2], a_mat, b_mat,
                                                       ablation="without_specific"))
    without_row = generate_delta(w0, None, None, p[2], q[2], a_mat, b_mat, ablation="without_row")
    torch.testing.assert_close(without_row, generate_delta(w0, p[1], q[1], p[2], q[2], a_mat, b_mat,
                                                           ablation="without_row"))
    generate_delta(w0, p[1], q[1], None, None, a_mat, b_mat, ablation="without_column")


def test_dropout_only_in_training_and_unbiased():
    w0, p, q, a_mat, b_mat, _ = _factors(d=8, a=3, b=2, seed=6)
    kw = dict(dropout=0.5)
    eval_a = generate_delta(w0, p[1], q[1], p[2], q[2], a_mat, b_mat, **kw)
    eval_b = generate_delta(w0, p[1], q[1], p[2], q[2], a_mat, b_mat, **kw)
    assert torch.equal(eval_a, eval_b)
    torch.testing.assert_close(eval_a, generate_delta(w0, p[1], q[1], p[2], q[2], a_mat, b_mat))
    torch.manual_seed(0)
    draws = torch.stack([generate_delta(w0, p[1], q[1], p[2], q[2], a_mat, b_mat, training=True, **kw)
                         for _ in range(4000)])
    # Dropout on the generated matrix: about half of ΔW's entries are zero in each draw.
    zero_frac = (draws == 0).double().mean().item()
    assert 0.45 < zero_frac < 0.55
    # Inverted dropout, linear stages (identity activations): E[ΔW_train] = ΔW_eval.
    scale = eval_a.abs().mean()
    assert (draws.mean(0) - eval_a).abs().mean() < 0.1 * scale


class _MatmulShapes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        if name.endswith(("mm", "bmm", "addmm", "baddbmm", "matmul")):
            mats = [t for t in args if isinstance(t, torch.Tensor) and t.dim() >= 2][-2:]
            if len(mats) == 2:
                self.shapes.append((mats[0].shape[-2], mats[0].shape[-1], mats[1].shape[-1]))
        return func(*args, **(kwargs or {}))


def test_no_d_by_d_transformation_matrix():
    """Cost rule: every matmul (forward and backward) has a thin side, O(d²(a+b)) not O(d³)."""
    d, a, b = 64, 6, 2
    w0, p, q, a_mat, b_mat, biases = _factors(d=d, a=a, b=b, bias=True)
    params = [p[1], q[1], p[2], q[2], a_mat, b_mat, *biases[1], *biases[2]]
    for t in params:
        t.requires_grad_(True)
    with _MatmulShapes() as log:
        out = generate_delta(w0, p[1], q[1], p[2], q[2], a_mat, b_mat, sigma1="gelu", sigma2="tanh",
                             down_bias1=biases[1][0], up_bias1=biases[1][1], down_bias2=biases[2][0],
                             up_bias2=biases[2][1], dropout=0.1, training=True)
        out.square().sum().backward()
    assert len(log.shapes) >= 4
    assert all(min(shape) <= a + b for shape in log.shapes), log.shapes
    assert all(t.grad is not None for t in params)


def test_invalid_arguments_name_the_field():
    w0, p, q, a_mat, b_mat, _ = _factors()
    with pytest.raises(ValueError, match="sigma1"):
        generate_delta(w0, p[1], q[1], p[2], q[2], a_mat, b_mat, sigma1="swish")
    with pytest.raises(ValueError, match="ablation"):
        generate_delta(w0, p[1], q[1], p[2], q[2], a_mat, b_mat, ablation="without_everything")
    with pytest.raises(ValueError, match="w0"):
        generate_delta(w0[:, :3], p[1], q[1], p[2], q[2], a_mat, b_mat)
    with pytest.raises(ValueError, match="down_bias1"):
        generate_delta(w0, p[1], q[1], p[2], q[2], a_mat, b_mat, down_bias1=torch.zeros(2, dtype=w0.dtype))


@pytest.mark.parametrize("layout", ["linear", "transposed"])
@pytest.mark.parametrize("ratio_on", ["w0", "generator"])
@pytest.mark.parametrize("ablation", ["full", "without_row", "without_column"])
def test_dropout_masks_follow_the_spec_exactly(ablation, ratio_on, layout):
    """Same random stream: Drop_p(Z) = mask ⊙ Z / keep on each stage's generated matrix (stage 1 on
    S_1, the last stage on ΔW); the implementation's folding of the scales must be exact."""
    from genft_search.method._generator_fn import dropped_positions

    d, r, s, n_a = 10, 0.9, 0.7, 4
    leaves = _leaves(*_factors(d=d, a=n_a, bias=True))
    w0, p1, q1, p2, q2, a_mat, b_mat = leaves[:7]
    p, q, biases = {1: p1, 2: p2}, {1: q1, 2: q2}, {1: tuple(leaves[7:9]), 2: tuple(leaves[9:11])}
    g = r if ratio_on == "generator" else 1.0
    for sigma2 in ("identity", "tanh", "leaky_relu"):
        w = w0 * r if ratio_on == "w0" else w0

        def stage(k, x, sigma2=sigma2):
            down_bias, up_bias = biases[k]
            total = (_act("gelu", x @ (g * p[k]).T + down_bias[:n_a]) @ (g * q[k]).T
                     + _act("gelu", x @ (g * a_mat).T + down_bias[n_a:]) @ (g * b_mat).T + up_bias)
            return _act(sigma2, total)

        torch.manual_seed(123)
        got = generate_delta(
            w0, p[1], q[1], p[2], q[2], a_mat, b_mat, sigma1="gelu", sigma2=sigma2, w0_ratio=r, scaling=s,
            ratio_on=ratio_on, delta_layout=layout, ablation=ablation, dropout=0.3, training=True,
            down_bias1=biases[1][0], up_bias1=biases[1][1], down_bias2=biases[2][0], up_bias2=biases[2][1],
        )
        torch.manual_seed(123)
        n_masks = 2 if ablation == "full" else 1
        masks = []
        for _ in range(n_masks):
            mask = torch.ones(d * d, dtype=w0.dtype)
            mask[dropped_positions(d * d, 0.3, w0.device)] = 0.0
            masks.append(mask.view(d, d))
        keep = 0.7
        if ablation == "full":
            y = stage(2, (stage(1, w) * masks[0] / keep).T)
        elif ablation == "without_row":
            y = stage(2, w.T)
        else:
            y = stage(1, w).T
        delta = y.T if layout == "transposed" else y
        expected = s * delta * masks[-1] / keep  # the last stage computes ΔW in its own layout
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12, msg=sigma2)
        _assert_same_grads(got, expected, leaves, sigma2)
