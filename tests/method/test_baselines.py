"""LoRA (one A/B pair per q and v block), linear probe and full fine-tuning behind the adapter interface."""

from __future__ import annotations

import pytest
import torch

from genft_search.method import attach_method, lora_num_parameters

from .method_helpers import make_bert, make_vit, perturb, run_model


def _num_layers_and_d(family, model):
    if family == "vit":
        return len(model.blocks), model.embed_dim
    return model.config.num_hidden_layers, model.config.hidden_size


def test_lora_counts_and_targets(family_model):
    family, factory = family_model
    model = factory(0)
    adapter = attach_method("lora", model, {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.1, "lr": 1.0})
    num_layers, d = _num_layers_and_d(family, model)
    assert adapter.num_parameters() == lora_num_parameters(4, d=d, num_layers=num_layers)
    names = {n for n, _ in adapter.named_parameters()}
    if family == "vit":
        expected = {f"blocks.{i}.attn.qkv.lora_{f}.{t}" for i in range(num_layers) for f in "AB"
                    for t in "qv"}
    else:
        encoder = "roberta" if "roberta" in type(model).__name__.lower() else "bert"
        expected = {f"{encoder}.encoder.layer.{i}.attention.self.{proj}.lora_{f}.{proj[0]}"
                    for i in range(num_layers) for f in "AB" for proj in ("query", "value")}
    assert names == expected
    shapes = {tuple(p.shape) for _, p in adapter.named_parameters()}
    assert shapes == {(4, d), (d, 4)}  # A (r x d) and B (d x r) per projection
    assert not any("lora" in n for n, _ in adapter.head_named_parameters())


def test_lora_starts_at_zero_and_is_the_frozen_model_with_w_plus_delta():
    """ΔW = (α / r) · B A per block, zero at the start (B = 0), k rows and key projections untouched."""
    model, frozen = make_vit(), make_vit()
    adapter = attach_method("lora", model, {"lora_r": 2, "lora_alpha": 6})
    model.eval()
    frozen.eval()
    with torch.no_grad():
        torch.testing.assert_close(run_model(model, "vit"), run_model(frozen, "vit"), rtol=0, atol=0)
        perturb(adapter.parameters(), scale=0.2)
        deltas = adapter.delta_weights()
        for i, blk in enumerate(model.blocks):
            layer, d = blk.attn.qkv, model.embed_dim
            for t, start in (("q", 0), ("v", 2 * d)):
                expected = 3.0 * layer.lora_B[t] @ layer.lora_A[t]
                torch.testing.assert_close(deltas[f"blocks.{i}.attn.qkv.weight"][start : start + d], expected)
            assert torch.count_nonzero(deltas[f"blocks.{i}.attn.qkv.weight"][d : 2 * d]) == 0
            frozen.blocks[i].attn.qkv.weight.add_(deltas[f"blocks.{i}.attn.qkv.weight"])
        torch.testing.assert_close(run_model(model, "vit"), run_model(frozen, "vit"), rtol=1e-5, atol=1e-6)


def test_lora_on_a_text_encoder_equals_peft_lora_on_query_and_value():
    """Separate query/value Linears: the same update as HF PEFT's LoRA (scaling α / r, dropout off)."""
    from peft import LoraConfig, inject_adapter_in_model

    ours, theirs = make_bert(), make_bert()
    adapter = attach_method("lora", ours, {"lora_r": 3, "lora_alpha": 5})
    perturb(adapter.parameters(), scale=0.2)
    inject_adapter_in_model(LoraConfig(r=3, lora_alpha=5, target_modules=["query", "value"]), theirs)
    peft_params = dict(theirs.named_parameters())
    with torch.no_grad():
        for name, p in adapter.named_parameters():  # query.lora_A.q -> query.lora_A.default.weight
            stem, factor, _ = name.rsplit(".", 2)
            peft_params[f"{stem}.{factor}.default.weight"].copy_(p)
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        torch.testing.assert_close(run_model(ours, "text"), run_model(theirs, "text"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [{"lora_r": 0}, {"lora_r": 2.5}, {"lora_dropout": 1.0}, {"lora_alpha": "x"}])
def test_lora_invalid_values_name_the_key(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        attach_method("lora", make_vit(), bad)


def test_full_fine_tuning_trains_everything(family_model):
    _, factory = family_model
    model = factory(0)
    adapter = attach_method("full", model, {})
    n_head = sum(p.numel() for _, p in adapter.head_named_parameters())
    assert adapter.num_parameters() == sum(p.numel() for p in model.parameters()) - n_head
    assert len(adapter.trainable_parameters()) == len(list(model.parameters()))
    assert all(p.requires_grad for p in model.parameters())
