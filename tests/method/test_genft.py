"""GenFT attached to real models: batched path = functional path, W += ΔW semantics, merge reads the
original W0, save/load files, dropout by mode, and the fused-qkv autograd function. Merge ≡ forward,
the state-dict round trip and gradients per variant are in ``test_interface.py`` (every method)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.func import functional_call

from genft_search.method import GenFTConfig, attach_genft, generate_delta, load_genft
from genft_search.method._genft import _RowDeltaLinear

from .method_helpers import make_bert, make_vit, perturb, run_model, text_input, vit_input

CONFIGS = [
    dict(shared_dim=6, specific_dim=2, sigma1="gelu", sigma2="tanh", dropout=0.0, w0_ratio=0.8, scaling=1.5),
    dict(shared_dim=4, specific_dim=3, sigma1="leaky_relu", sigma2="identity", bias=True, dropout=0.0,
         specific_scope="module", ratio_on="w0", delta_layout="linear", w0_ratio=1.2),
    dict(shared_dim=5, specific_dim=0, ablation="without_row", dropout=0.0, specific_scope="block"),
    dict(shared_dim=3, specific_dim=2, ablation="without_shared", dropout=0.0, targets=("q", "k", "v")),
]


def _attach(factory, cfg, seed=0):
    model = factory(seed)
    adapter = attach_genft(model, GenFTConfig(**cfg))
    perturb(adapter.parameters())  # not just the init (zeros included)
    model.eval()
    return model, adapter


def _expected_unit(adapter, module_index, row_index, n_rows):
    if adapter.config.specific_scope == "block":
        return adapter.adapted_modules[module_index].layer
    return sum(len(m.rows) for m in adapter.adapted_modules[:module_index]) + row_index


@pytest.mark.parametrize("cfg", CONFIGS)
def test_batched_generation_equals_generate_delta_per_target(family_model, cfg):
    family, factory = family_model
    model, adapter = _attach(factory, cfg)
    assert adapter.family == family
    gen, c = adapter.generator, adapter.config
    deltas = adapter.delta_weights()
    names = {n for n, _ in model.named_parameters()}
    d = gen.d
    assert len(deltas) == len(adapter.adapted_modules)
    for i, m in enumerate(adapter.adapted_modules):
        assert m.param_name in names
        full = deltas[m.param_name]
        assert full.shape == m.module.weight.shape
        covered = torch.zeros(full.shape[0], dtype=torch.bool)
        for j, (_, start) in enumerate(m.rows):
            unit = _expected_unit(adapter, i, j, len(m.rows))
            a = gen.a[unit] if c.specific_dim else None
            b = gen.b[unit] if c.specific_dim else None
            biases = {k: getattr(gen, k, None) for k in ("down_bias1", "up_bias1", "down_bias2", "up_bias2")}
            w0 = m.module.weight[start : start + d].detach()
            expected = generate_delta(
                w0, getattr(gen, "p1", None), getattr(gen, "q1", None),
                getattr(gen, "p2", None), getattr(gen, "q2", None), a, b, sigma1=c.sigma1, sigma2=c.sigma2,
                w0_ratio=c.w0_ratio, scaling=c.scaling, ratio_on=c.ratio_on, delta_layout=c.delta_layout,
                ablation=c.ablation, **biases,
            )
            torch.testing.assert_close(full[start : start + d], expected, rtol=1e-5, atol=1e-6)
            covered[start : start + d] = True
        assert torch.count_nonzero(full[~covered]) == 0  # e.g. k rows of a fused qkv


def _reference_forward(frozen, adapter, family):
    """The frozen model with W ← W + ΔW, ΔW from generate_delta per target (differentiable)."""
    gen, c = adapter.generator, adapter.config
    new = {}
    for i, m in enumerate(adapter.adapted_modules):
        w = dict(frozen.named_parameters())[m.param_name]
        pieces, cursor = [], 0
        for j, (_, start) in enumerate(m.rows):
            unit = _expected_unit(adapter, i, j, len(m.rows))
            dlt = generate_delta(
                w[start : start + gen.d].detach(), getattr(gen, "p1", None), getattr(gen, "q1", None),
                getattr(gen, "p2", None), getattr(gen, "q2", None),
                gen.a[unit] if c.specific_dim else None, gen.b[unit] if c.specific_dim else None,
                sigma1=c.sigma1, sigma2=c.sigma2, w0_ratio=c.w0_ratio, scaling=c.scaling, ratio_on=c.ratio_on,
                delta_layout=c.delta_layout, ablation=c.ablation,
                **{k: getattr(gen, k, None) for k in ("down_bias1", "up_bias1", "down_bias2", "up_bias2")},
            )
            pieces += [w[cursor:start], w[start : start + gen.d] + dlt]
            cursor = start + gen.d
        new[m.param_name] = torch.cat([*pieces, w[cursor:]])
    if family == "vit":
        return functional_call(frozen, new, (vit_input(),))
    return functional_call(frozen, new, (), {"input_ids": text_input()}).logits


@pytest.mark.parametrize("cfg", CONFIGS)
def test_outputs_and_gradients_equal_frozen_model_with_w_plus_delta(family_model, cfg):
    family, factory = family_model
    frozen = factory(0).eval()
    model, adapter = _attach(factory, cfg)
    out = run_model(model, family)
    ref = _reference_forward(frozen, adapter, family)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    # and W += ΔW taken from delta_weights() (the documented meaning of that dict)
    with torch.no_grad():
        patched = copy.deepcopy(frozen)
        params = dict(patched.named_parameters())
        for name, dlt in adapter.delta_weights().items():
            params[name].add_(dlt)
        torch.testing.assert_close(run_model(patched, family), out.detach(), rtol=1e-5, atol=1e-5)
    # gradients through the batched path and the custom fused-qkv backward match the reference
    grads = torch.autograd.grad(out.square().sum(), list(adapter.parameters()))
    ref_grads = torch.autograd.grad(ref.square().sum(), list(adapter.parameters()))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_generator_runs_once_per_forward_in_batched_matmuls():
    model = make_vit(depth=4)
    adapter = attach_genft(model, GenFTConfig(shared_dim=4, specific_dim=2))
    calls = []
    adapter.generator.register_forward_hook(lambda *a: calls.append([tuple(t.shape) for t in a[2]]))
    run_model(model, "vit").sum().backward()
    assert calls == [[(48, 48)] * 8]  # one call generates all 2L matrices


def test_merged_forward_is_the_plain_linear(family_model):
    """Merged: the layers run F.linear on the stored weight, the generator is not called."""
    family, factory = family_model
    model, adapter = _attach(factory, CONFIGS[0])
    adapter.merge()
    calls = []
    adapter.generator.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        run_model(model, family)
    assert calls == []


def test_merge_reads_original_w0(family_model):
    """ΔW is generated from the original W0 even after merge/unmerge cycles."""
    _, factory = family_model
    _, adapter = _attach(factory, CONFIGS[0])
    first = adapter.delta_weights()
    for _ in range(3):
        adapter.merge()
        adapter.unmerge()
    for name, dlt in adapter.delta_weights().items():
        assert torch.equal(dlt, first[name])


def test_save_load_round_trip_reproduces_outputs_exactly(family_model, tmp_path):
    family, factory = family_model
    model, adapter = _attach(factory, CONFIGS[1], seed=3)
    path = tmp_path / "adapter.safetensors"
    adapter.save(path)
    fresh = factory(3)
    loaded = load_genft(fresh, path)
    fresh.eval()
    assert loaded.config == adapter.config
    with torch.no_grad():
        assert torch.equal(run_model(fresh, family), run_model(model, family))
    # adapter only: no backbone tensors in the file; with include_head the head travels too
    from safetensors.torch import load_file

    assert set(load_file(str(path))) == {n for n, _ in adapter.named_parameters()}
    perturb([p for _, p in adapter.head_named_parameters()], seed=11)
    adapter.save(path, include_head=True)
    fresh2 = factory(3)
    load_genft(fresh2, path).model.eval()
    with torch.no_grad():
        assert torch.equal(run_model(fresh2, family), run_model(model, family))


def test_load_rejects_other_family(tmp_path):
    model = make_vit()
    attach_genft(model, GenFTConfig(shared_dim=4)).save(tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="family"):
        load_genft(make_bert(), tmp_path / "a.safetensors")


def test_train_mode_applies_dropout_eval_is_deterministic(family_model):
    family, factory = family_model
    outputs = {}
    for p in (0.5, 0.0):
        model = factory(0)
        attach_genft(model, GenFTConfig(shared_dim=4, specific_dim=2, dropout=p))
        for mod in model.modules():  # only the generator's dropout may vary the output
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
        with torch.no_grad():
            model.eval()
            assert torch.equal(run_model(model, family), run_model(model, family))
            model.train()
            outputs[p] = (run_model(model, family), run_model(model, family))
    assert not torch.equal(*outputs[0.5])
    assert torch.equal(*outputs[0.0])


def test_eval_cache_follows_parameter_updates():
    model = make_vit().eval()
    adapter = attach_genft(model, GenFTConfig(shared_dim=4, specific_dim=2))
    with torch.no_grad():
        before = run_model(model, "vit")
        adapter.generator.p1.mul_(3.0)
        after = run_model(model, "vit")
    assert not torch.allclose(before, after)


def test_detach_restores_the_frozen_model(family_model):
    family, factory = family_model
    model, frozen = factory(0).eval(), factory(0).eval()
    adapter = attach_genft(model, GenFTConfig(shared_dim=4))
    adapter.merge()
    adapter.detach()
    assert not hasattr(model, "genft")
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in frozen.named_parameters()]
    with torch.no_grad():
        torch.testing.assert_close(run_model(model, family), run_model(frozen, family), rtol=1e-5, atol=1e-5)
    attach_genft(model, GenFTConfig(shared_dim=4))  # attachable again
    with pytest.raises(ValueError, match="already"):
        attach_genft(model, GenFTConfig(shared_dim=4))


def test_row_delta_linear_gradcheck():
    torch.manual_seed(0)
    d = 4
    x = torch.randn(2, 3, d, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3 * d, d, dtype=torch.float64)
    bias = torch.randn(3 * d, dtype=torch.float64)
    dq = torch.randn(d, d, dtype=torch.float64, requires_grad=True)
    dv = torch.randn(d, d, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, dq, dv: _RowDeltaLinear.apply(x, weight, bias, (0, 2 * d), weight.clone(), dq, dv),
        (x, dq, dv),
    )
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, w, b, dq: _RowDeltaLinear.apply(x, w, b, (d,), w.detach().clone(), dq),
        (x, weight, bias, dq),
    )
