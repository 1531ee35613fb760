"""Every registered method through the same interface tests, as timm's tests follow ``list_models``.

Parametrised over ``list_methods()`` (GenFT over every ablation variant too) × both model families (a
small timm ViT with a fused qkv, a small BERT): attaching freezes everything else, merge ≡ forward
and touches only the q and v rows (LoRA and GenFT leave k exactly as it was), the state dict
reloads into a freshly attached model, and after one optimizer step every adapter parameter has a
non-zero gradient (arXiv 2506.11042 §4.3: an ablation variant must still be able to learn).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genft_search.method import attach_method, list_methods
from genft_search.method._targets import find_adapted_modules
from genft_search.method.functional import ABLATIONS

from .method_helpers import make_bert, make_vit, perturb, run_model

FAMILIES: dict[str, Callable[[], nn.Module]] = {
    "vit": lambda: make_vit(0, depth=2),
    "text": lambda: make_bert(0, layers=2),
}
# Small settings per method; a method registered later without an entry here runs with {}.
SETTINGS: dict[str, dict[str, Any]] = {
    "genft": {"shared_dim": 4, "specific_dim": 2, "dropout": 0.0},
    "lora": {"lora_r": 2, "lora_alpha": 4},
}
# GenFT inits that a variant must survive: the default, the paper's commonest (b = 0, A = B = 0)
# and LoRA-style (B = 0), which with the shared factors off would leave ΔW ≡ 0.
GENFT_INITS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper_b0_zeros": {"specific_dim": 0, "init_a": "zeros", "init_b": "zeros"},
    "lora_style": {"init_a": "kaiming_uniform", "init_b": "zeros"},
}


def _cases(genft_inits: dict[str, dict[str, Any]]) -> list[Any]:
    cases = []
    for name in list_methods():
        base = SETTINGS.get(name, {})
        if name != "genft":
            cases.append(pytest.param(name, base, id=name))
            continue
        for init, extra in genft_inits.items():
            for variant in ABLATIONS:
                suffix = "" if init == "default" else f"-{init}"
                cases.append(pytest.param(name, {**base, **extra, "ablation": variant},
                                          id=f"genft-{variant}{suffix}"))
    return cases


METHODS = _cases({"default": {}})
METHODS_AND_INITS = _cases(GENFT_INITS)


@pytest.fixture(params=list(FAMILIES))
def family(request) -> str:
    return request.param


def _q_v_rows(model: nn.Module, family: str) -> dict[str, tuple[nn.Parameter, torch.Tensor]]:
    """{weight name: (the weight, a row mask of its q and v blocks)} of the untouched model."""
    out = {}
    for m in find_adapted_modules(model, family, ("q", "v")):
        mask = torch.zeros(m.module.out_features, dtype=torch.bool)
        for _, start in m.rows:
            mask[start : start + m.module.in_features] = True
        out[m.param_name] = (m.module.weight, mask)
    return out


def _labels(family: str, batch: int = 2) -> torch.Tensor:
    return torch.arange(batch) % (5 if family == "vit" else 3)


@pytest.mark.parametrize(("name", "config"), METHODS)
def test_attach_freezes_everything_else(family, name, config):
    model = FAMILIES[family]()
    adapter = attach_method(name, model, {**config, "lr": 1e-3, "epochs": 3})  # training keys ignored
    assert (adapter.name, adapter.model, adapter.family) == (name, model, family)
    own = {id(p) for p in adapter.parameters()}
    head = {id(p) for _, p in adapter.head_named_parameters()}
    assert head and not own & head
    assert {id(p) for p in adapter.trainable_parameters()} == own | head
    assert {id(p) for p in model.parameters() if p.requires_grad} == own | head
    assert adapter.num_parameters() == sum(p.numel() for p in adapter.parameters())


@pytest.mark.parametrize(("name", "config"), METHODS)
def test_merge_equals_forward_and_touches_only_the_q_v_rows(family, name, config):
    model = FAMILIES[family]()
    targets = _q_v_rows(model, family)
    adapter = attach_method(name, model, config)
    perturb(adapter.parameters(), scale=0.2)  # LoRA's B starts at zero: make ΔW non-zero
    model.eval()
    before = {id(p): p.detach().clone() for p in model.parameters()}
    with torch.no_grad():
        live = run_model(model, family)
        adapter.merge()
        assert adapter.merged
        merged = run_model(model, family)
        after_merge = {id(p): p.detach().clone() for p in model.parameters()}
        deltas = adapter.delta_weights() if hasattr(adapter, "delta_weights") else {}
        adapter.merge()  # idempotent
        adapter.unmerge()
        assert not adapter.merged
        again = run_model(model, family)
    torch.testing.assert_close(merged, live, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, live, rtol=1e-5, atol=1e-5)
    rows = {id(w): (weight_name, mask) for weight_name, (w, mask) in targets.items()}
    for p in model.parameters():
        torch.testing.assert_close(p, before[id(p)], rtol=0, atol=1e-6)  # unmerge restores
        if id(p) not in rows:
            assert torch.equal(after_merge[id(p)], before[id(p)])  # merge touches nothing else
            continue
        weight_name, mask = rows[id(p)]
        assert torch.equal(after_merge[id(p)][~mask], before[id(p)][~mask])  # k rows exactly as they were
        if weight_name in deltas:
            torch.testing.assert_close(after_merge[id(p)] - before[id(p)], deltas[weight_name])
            assert torch.count_nonzero(deltas[weight_name][~mask]) == 0
            assert deltas[weight_name][mask].abs().max() > 0


@pytest.mark.parametrize(("name", "config"), METHODS)
def test_state_dict_round_trip_into_a_fresh_model(family, name, config):
    model = FAMILIES[family]()
    adapter = attach_method(name, model, config)
    perturb(adapter.parameters(), scale=0.2)
    perturb([p for _, p in adapter.head_named_parameters()], seed=11)
    assert set(adapter.state_dict()) == {n for n, _ in adapter.named_parameters()}
    state = {k: v.clone() for k, v in adapter.state_dict(include_head=True).items()}
    fresh = FAMILIES[family]()
    other = attach_method(name, fresh, config)
    other.merge()
    other.load_state_dict(state)  # while merged: the new ΔW replaces the old one in the weights
    assert other.merged
    model.eval()
    fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(run_model(fresh, family), run_model(model, family), rtol=1e-5, atol=1e-5)
    with pytest.raises(KeyError):
        other.load_state_dict({"nope": torch.zeros(1)})


@pytest.mark.parametrize(("name", "config"), METHODS_AND_INITS)
def test_every_adapter_parameter_has_a_gradient_after_one_step(family, name, config):
    """One AdamW step, then every parameter of the method (and the head) gets a non-zero gradient and
    nothing frozen gets one: no method or ablation variant is a linear probe in disguise."""
    torch.manual_seed(0)
    model = FAMILIES[family]()
    adapter = attach_method(name, model, config)
    model.train()
    optimizer = torch.optim.AdamW(adapter.trainable_parameters(), lr=1e-2)
    for step in range(2):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(run_model(model, family), _labels(family)).backward()
        if step == 0:
            optimizer.step()
    trainable = {id(p) for p in adapter.trainable_parameters()}
    for n, p in [*adapter.named_parameters(), *adapter.head_named_parameters()]:
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, n
    for n, p in model.named_parameters():
        if id(p) not in trainable:
            assert p.grad is None, n

