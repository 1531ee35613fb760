"""GenFTConfig: validation naming the field, paper codes, family defaults and the ablation rules."""

from __future__ import annotations

import pytest

from genft_search.method import GenFTConfig


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("shared_dim", -1), ("shared_dim", 2.5), ("shared_dim", True), ("specific_dim", "2"),
        ("sigma1", "swish"), ("sigma2", None), ("init_a", "orthogonal"), ("init_b", "K-X"),
        ("w0_ratio", 0.0), ("w0_ratio", float("nan")), ("scaling", -0.1), ("scaling", float("inf")),
        ("dropout", 1.0), ("dropout", -0.2), ("bias", "yes"), ("ratio_on", "weights"),
        ("delta_layout", "columns"), ("shared_init", "ones"), ("specific_scope", "layer"),
        ("ablation", "without_both"), ("targets", ("q", "o")), ("targets", ("q", "q")), ("targets", ()),
    ],
)
def test_invalid_value_raises_value_error_naming_field(field, value):
    with pytest.raises(ValueError, match=rf"GenFTConfig\.{field}:"):
        GenFTConfig(**{field: value})


def test_paper_codes_and_target_spellings_are_normalised():
    cfg = GenFTConfig(sigma1="LR", sigma2="I", init_a="K-U", init_b="Z", shared_init="X-U",
                      targets=["value", "query"])
    assert (cfg.sigma1, cfg.sigma2, cfg.init_a, cfg.init_b) == ("leaky_relu", "identity", "kaiming_uniform",
                                                                "zeros")
    assert cfg.shared_init == "xavier_uniform"
    assert cfg.targets == ("q", "v")
    assert GenFTConfig(targets="q,k").targets == ("q", "k")


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("vit", dict(ratio_on="generator", delta_layout="transposed", shared_init="trunc_normal",
                     specific_scope="block", bias=False)),
        ("text", dict(ratio_on="w0", delta_layout="linear", shared_init="kaiming_uniform",
                      specific_scope="module", bias=True)),
    ],
)
def test_resolve_fills_family_defaults_only_where_none(family, expected):
    cfg = GenFTConfig().resolve(family)
    assert {k: getattr(cfg, k) for k in expected} == expected
    assert cfg.targets == ("q", "v") and cfg.is_resolved
    explicit = GenFTConfig(ratio_on="w0", delta_layout="linear", bias=False, specific_scope="module",
                           shared_init="normal", targets=("q",)).resolve(family)
    assert (explicit.ratio_on, explicit.delta_layout, explicit.bias) == ("w0", "linear", False)
    assert (explicit.specific_scope, explicit.shared_init, explicit.targets) == ("module", "normal", ("q",))
    with pytest.raises(ValueError, match="family"):
        GenFTConfig().resolve("audio")


@pytest.mark.parametrize(
    ("ablation", "dims", "expected"),
    [
        ("without_shared", (82, 2), (0, 2)),
        ("without_shared", (100, 0), (0, 8)),
        ("without_specific", (82, 2), (82, 0)),
        ("without_specific", (0, 5), (8, 0)),
        ("without_row", (32, 5), (32, 5)),
        ("full", (0, 3), (0, 3)),
    ],
)
def test_ablation_rules(ablation, dims, expected):
    cfg = GenFTConfig(shared_dim=dims[0], specific_dim=dims[1], ablation=ablation).resolve("vit")
    assert (cfg.shared_dim, cfg.specific_dim) == expected
    assert cfg.resolve("vit") == cfg  # idempotent


def test_no_hidden_units_is_rejected():
    with pytest.raises(ValueError, match="shared_dim"):
        GenFTConfig(shared_dim=0, specific_dim=0).resolve("text")


def test_from_mapping_ignores_training_keys_and_round_trips():
    flat = {"shared_dim": 24, "sigma2": "T", "lr": 1e-3, "epochs": 3, "method": "genft"}
    cfg = GenFTConfig.from_mapping(flat)
    assert (cfg.shared_dim, cfg.sigma2) == (24, "tanh")
    resolved = cfg.resolve("text")
    assert GenFTConfig(**resolved.to_dict()) == resolved


TN, KU = "trunc_normal", "kaiming_uniform"


@pytest.mark.parametrize(
    ("cfg", "family", "expected"),
    [
        # the "0 becomes 8" factors are new: initialised as the shared ones (family default)
        (dict(ablation="without_shared", shared_dim=100, specific_dim=0, init_a="Z", init_b="Z"), "vit",
         (TN, TN, "fallback_dim")),
        (dict(ablation="without_shared", shared_dim=100, specific_dim=0, init_a="X-U", init_b="N"), "text",
         (KU, KU, "fallback_dim")),
        (dict(ablation="without_shared", specific_dim=0, shared_init="zeros"), "vit",
         (TN, TN, "fallback_dim")),
        # shared off, both stages: one zero factor keeps ΔW quadratic in B·A = 0
        (dict(ablation="without_shared", specific_dim=2, init_a=KU, init_b="zeros"), "vit",
         (TN, TN, "zero_factor")),
        (dict(shared_dim=0, specific_dim=3, init_a="zeros", init_b="normal"), "vit", (TN, TN, "zero_factor")),
        (dict(shared_dim=0, specific_dim=3, init_a="zeros", init_b="zeros", ablation="without_column"), "vit",
         (TN, TN, "zero_factor")),
        # alive as configured: kept
        (dict(ablation="without_shared", specific_dim=2, init_a="normal", init_b="xavier_uniform"), "vit",
         ("normal", "xavier_uniform", None)),
        (dict(shared_dim=0, specific_dim=3, init_b="zeros", ablation="without_row"), "vit",
         (KU, "zeros", None)),
        (dict(shared_dim=4, specific_dim=2, init_a="zeros", init_b="zeros"), "vit", ("zeros", "zeros", None)),
    ],
)
def test_specific_init_is_live_when_the_shared_factors_are_off(cfg, family, expected):
    resolved = GenFTConfig(**cfg).resolve(family)
    assert (resolved.init_a, resolved.init_b, resolved.init_reason) == expected
    assert resolved.resolve(family) == resolved  # idempotent, the reason kept
    assert GenFTConfig(**resolved.to_dict()) == resolved
