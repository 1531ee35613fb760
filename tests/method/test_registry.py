"""Method registry and family detection."""

from __future__ import annotations

import pytest
from torch import nn

from genft_search.method import (
    MethodAdapter,
    _registry,
    attach_method,
    detect_family,
    list_methods,
    register_method,
)

from .method_helpers import make_bert, make_vit


def test_builtin_methods_are_listed_sorted():
    assert list_methods() == ["full", "genft", "linear", "lora"]


def test_unknown_method_names_the_known_ones():
    with pytest.raises(ValueError, match="genft, linear, lora"):
        attach_method("loar", make_vit(), {})


def test_register_method_decorator(monkeypatch):
    monkeypatch.setattr(_registry, "_METHODS", dict(_registry._METHODS))

    class BiasOnly(MethodAdapter):
        name = "bitfit"

        def named_parameters(self):
            return ((n, p) for n, p in self.model.named_parameters() if n.endswith(".bias"))

    @register_method("bitfit")
    def attach_bitfit(model, config):
        adapter = BiasOnly(model, detect_family(model))
        adapter._freeze_all_but_trainable()
        return adapter

    assert "bitfit" in list_methods()
    model = make_bert()
    adapter = attach_method("bitfit", model, {"lr": 1e-3})
    biases = [p for n, p in model.named_parameters() if n.endswith(".bias")]
    assert adapter.num_parameters() == sum(p.numel() for p in biases)
    with pytest.raises(ValueError, match="already registered"):
        register_method("bitfit")(lambda model, config: adapter)


def test_detect_family():
    assert detect_family(make_vit()) == "vit"
    assert detect_family(make_bert()) == "text"
    assert detect_family(make_bert(roberta=True)) == "text"
    assert detect_family(make_bert().bert) == "text"  # the bare encoder too
    with pytest.raises(ValueError, match="not supported"):
        detect_family(nn.Sequential(nn.Linear(4, 4)))


def test_distilbert_projections_and_fresh_head():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    model = DistilBertForSequenceClassification(
        DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=100, num_labels=2)
    )
    adapter = attach_method("genft", model, {"shared_dim": 4, "specific_dim": 1})
    assert detect_family(model) == "text"
    assert [m.name.rsplit(".", 1)[-1] for m in adapter.adapted_modules] == ["q_lin", "v_lin"] * 2
    assert {n.split(".")[0] for n, _ in adapter.head_named_parameters()} == {"pre_classifier", "classifier"}
