"""The generator module: every init scheme does what its name says; parameters follow the config."""

from __future__ import annotations

import math

import pytest
import torch

from genft_search.method import GenFTConfig, GenFTGenerator

D, A, B, UNITS = 256, 32, 16, 6


def _gen(family: str = "vit", **kw) -> GenFTGenerator:
    torch.manual_seed(0)
    cfg = GenFTConfig(shared_dim=A, specific_dim=B, **kw).resolve(family)
    return GenFTGenerator(cfg, D, list(range(UNITS)))


def _check_uniform(t: torch.Tensor, bound: float) -> None:
    assert t.abs().max() <= bound + 1e-7
    assert t.abs().max() > 0.95 * bound  # fills its range
    assert t.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize("which", ["a", "b"])
@pytest.mark.parametrize("scheme", ["zeros", "kaiming_uniform", "xavier_uniform", "normal"])
def test_specific_init_schemes(which, scheme):
    gen = _gen(**{f"init_{which}": scheme})
    t = getattr(gen, which).detach()
    assert t.shape == ((UNITS, B, D) if which == "a" else (UNITS, D, B))
    fan_in = D if which == "a" else B  # nn.Linear layout: A is b × d (in d), B is d × b (in b)
    if scheme == "zeros":
        assert torch.count_nonzero(t) == 0
    elif scheme == "kaiming_uniform":  # nn.Linear's default: bound 1/sqrt(fan_in)
        for unit in t:
            _check_uniform(unit, 1 / math.sqrt(fan_in))
    elif scheme == "xavier_uniform":
        for unit in t:
            _check_uniform(unit, math.sqrt(6 / (B + D)))
    else:
        assert t.mean().abs() < 1e-3
        assert t.std().item() == pytest.approx(0.01, rel=0.05)
    assert not torch.equal(t[0], t[1]) or scheme == "zeros"  # each unit initialised on its own


def test_shared_init_defaults_per_family():
    vit = _gen()  # trunc_normal(std=0.02)
    for name in ("p1", "q1", "p2", "q2"):
        t = getattr(vit, name).detach()
        assert t.std().item() == pytest.approx(0.02, rel=0.05)
        assert t.abs().max() <= 2.0
    text = _gen(family="text")  # nn.Linear default: P is a × d (fan_in d), Q is d × a (fan_in a)
    _check_uniform(text.p1.detach(), 1 / math.sqrt(D))
    _check_uniform(text.q2.detach(), 1 / math.sqrt(A))
    assert torch.count_nonzero(text.down_bias1) == 0 and torch.count_nonzero(text.up_bias2) == 0
    assert text.down_bias1.shape == (A + B,) and text.up_bias1.shape == (D,)


@pytest.mark.parametrize(
    ("ablation", "present", "absent"),
    [
        ("full", {"p1", "q1", "p2", "q2", "a", "b"}, set()),
        ("without_shared", {"a", "b"}, {"p1", "q1", "p2", "q2"}),
        ("without_specific", {"p1", "q1", "p2", "q2"}, {"a", "b"}),
        ("without_row", {"p2", "q2", "a", "b"}, {"p1", "q1"}),
        ("without_column", {"p1", "q1", "a", "b"}, {"p2", "q2"}),
    ],
)
def test_unused_parameters_are_not_created(ablation, present, absent):
    names = {n for n, _ in _gen(ablation=ablation).named_parameters()}
    assert present <= names and not absent & names


def test_nonzero_delta_at_init_and_dropout_follows_mode():
    gen = _gen(dropout=0.3)
    w0 = torch.randn(UNITS, D, D) * 0.05
    gen.eval()
    first = gen(w0)
    assert first.abs().max() > 0  # the shared factors are random: ΔW ≠ 0 at init (spec)
    assert torch.equal(first, gen(w0))
    gen.train()
    assert not torch.equal(gen(w0), gen(w0))
    assert torch.equal(gen(w0, training=False), first)
