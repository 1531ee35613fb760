"""LoRA (PEFT), linear probe and full fine-tuning behind the GenFT adapter interface."""

from __future__ import annotations

import pytest
import torch

from genft_search.method import attach_method, lora_num_parameters

from .method_helpers import make_bert, make_vit, perturb, run_model


def _num_layers_and_d(family, model):
    if family == "vit":
        return len(model.blocks), model.embed_dim
    return model.config.num_hidden_layers, model.config.hidden_size


def test_lora_counts_targets_and_trainables(family_model):
    family, factory = family_model
    model = factory(0)
    adapter = attach_method("lora", model, {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.1, "lr": 1.0})
    num_layers, d = _num_layers_and_d(family, model)
    assert adapter.num_parameters() == lora_num_parameters(4, d=d, num_layers=num_layers)
    names = [n for n, _ in adapter.named_parameters()]
    wanted = ("attn.qkv",) if family == "vit" else ("self.query", "self.value")
    assert names and all(any(w in n for w in wanted) for n in names)
    trainable = {id(p) for p in adapter.trainable_parameters()}
    assert {id(p) for p in model.parameters() if p.requires_grad} == trainable
    assert len(trainable) == len(names) + len(list(adapter.head_named_parameters()))


def test_lora_merge_unmerge_round_trip(family_model):
    family, factory = family_model
    model = factory(0)
    adapter = attach_method("lora", model, {"lora_r": 4})
    perturb(adapter.parameters(), scale=0.2)  # LoRA's B starts at zero; make ΔW non-zero
    model.eval()
    with torch.no_grad():
        live = run_model(model, family)
        adapter.merge()
        merged = run_model(model, family)
        adapter.unmerge()
        again = run_model(model, family)
    assert adapter.merged is False
    torch.testing.assert_close(merged, live, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, live, rtol=1e-5, atol=1e-5)


def test_lora_state_dict_round_trip():
    model = make_vit()
    adapter = attach_method("lora", model, {"lora_r": 2})
    perturb(adapter.parameters(), scale=0.2)
    state = {k: v.clone() for k, v in adapter.state_dict(include_head=True).items()}
    other_model = make_vit()
    other = attach_method("lora", other_model, {"lora_r": 2})
    other.load_state_dict(state)
    model.eval()
    other_model.eval()
    with torch.no_grad():
        assert torch.equal(run_model(model, "vit"), run_model(other_model, "vit"))


@pytest.mark.parametrize("bad", [{"lora_r": 0}, {"lora_r": 2.5}, {"lora_dropout": 1.0}, {"lora_alpha": "x"}])
def test_lora_invalid_values_name_the_key(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        attach_method("lora", make_vit(), bad)


def test_linear_probe_trains_only_the_head(family_model):
    family, factory = family_model
    model = factory(0)
    adapter = attach_method("linear", model, {})
    assert adapter.num_parameters() == 0 and list(adapter.parameters()) == []
    head = [p for _, p in adapter.head_named_parameters()]
    assert head and adapter.trainable_parameters() == head
    run_model(model, family).sum().backward()
    for p in model.parameters():
        assert (p.grad is not None) == any(p is h for h in head)


def test_full_fine_tuning_trains_everything(family_model):
    _, factory = family_model
    model = factory(0)
    adapter = attach_method("full", model, {})
    n_head = sum(p.numel() for _, p in adapter.head_named_parameters())
    assert adapter.num_parameters() == sum(p.numel() for p in model.parameters()) - n_head
    assert len(adapter.trainable_parameters()) == len(list(model.parameters()))
    assert all(p.requires_grad for p in model.parameters())


def test_all_methods_share_one_interface():
    for name in ("genft", "lora", "linear", "full"):
        model = make_bert()
        adapter = attach_method(name, model, {"shared_dim": 4, "lora_r": 2, "epochs": 3})
        assert adapter.name == name and adapter.model is model and adapter.family == "text"
        assert adapter.num_parameters() == sum(p.numel() for p in adapter.parameters())
        assert set(adapter.state_dict()) == {n for n, _ in adapter.named_parameters()}
        adapter.merge()
        adapter.unmerge()
