"""Search spaces: presets, overrides, conditional parameters, fingerprints, grids, paper warm starts."""

from __future__ import annotations

import optuna
import pytest

from genft_search.config import parse_study_config
from genft_search.errors import UserError
from genft_search.paper import paper_benchmark, paper_setting
from genft_search.space import (
    DEFAULT_PRESET,
    build_space,
    incompatible_parameters,
    preset_names,
    space_difference,
)
from tests.support.engine import toy_study

PAPER_KEYS = {"shared_dim", "specific_dim", "sigma1", "sigma2", "init_a", "init_b", "w0_ratio", "scaling",
              "dropout", "bias", "lr", "weight_decay", "label_smoothing"}


def _config(**overrides):
    doc = toy_study("s", **overrides)
    doc.setdefault("method", "genft")
    return parse_study_config(doc, "s.yaml")


def test_paper_preset_covers_the_issue_list():
    space = build_space(_config(space="paper", params={}))
    assert set(space.names()) == PAPER_KEYS
    assert space.params["init_a"].when == (("specific_dim", "gt", 0),)
    assert space.params["init_b"].when == (("specific_dim", "gt", 0),)


def test_every_paper_setting_lies_in_the_paper_space():
    """`warm_start: paper` can only enqueue what the space contains: the preset must cover all tasks."""
    space = build_space(_config(space="paper", params={}))
    rows = 0
    for kind in ("vtab1k", "fgvc", "glue"):
        for task in paper_benchmark(kind).tasks:
            row = paper_setting(kind, task)
            for key, value in row.items():
                if key in space:
                    assert space.contains(key, value), (kind, task, key, value)
            rows += 1
    assert rows == 19 + 5 + 8


def test_overrides_removal_and_fixed():
    config = _config(space="paper", params={"shared_dim": {"int": [8, 16], "step": 2}, "bias": None,
                                            "extra": {"choice": [1, 2]}},
                     fixed={"epochs": 4, "lr": 0.01})
    space = build_space(config)
    assert "bias" not in space and "lr" not in space and "extra" in space
    dist = space.params["shared_dim"].distribution
    assert (dist.low, dist.high, dist.step) == (8, 16, 2)


def test_default_preset_follows_the_method():
    assert DEFAULT_PRESET["genft"] == "paper"
    lora = build_space(_config(method="lora", space=None, params={}))
    assert {"lora_r", "lr"} <= set(lora.names()) and "shared_dim" not in lora
    assert set(preset_names()) >= {"paper", "lora", "training", "none"}


def test_conditional_parameters_sampled_only_when_active():
    space = build_space(_config(space="paper", params={"specific_dim": {"int": [0, 2]}}))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_zero = seen_positive = False
    for _ in range(40):
        trial = study.ask()
        values = space.sample(trial)
        study.tell(trial, 0.0)
        if values["specific_dim"] == 0:
            seen_zero = True
            assert "init_a" not in values and "init_b" not in values
        else:
            seen_positive = True
            assert {"init_a", "init_b"} <= set(values)
    assert seen_zero and seen_positive


def test_condition_must_name_an_earlier_parameter():
    with pytest.raises(UserError, match=r"params.x.when: refers to 'nope'"):
        build_space(_config(params={"x": {"choice": [1, 2], "when": {"nope": {"gt": 0}}}}))


def test_removing_an_unknown_preset_parameter_is_an_error():
    with pytest.raises(UserError, match=r"params.nope: null removes a preset parameter"):
        build_space(_config(space="paper", params={"nope": None}))


def test_fingerprint_tracks_space_and_method():
    base = build_space(_config())
    same = build_space(_config())
    wider = build_space(_config(params={"lr": {"float": [0.01, 2.0], "log": True},
                                        "width": {"choice": [4, 8, 16]}}))
    assert base.fingerprint("genft") == same.fingerprint("genft")
    assert base.fingerprint("genft") != wider.fingerprint("genft")
    assert base.fingerprint("genft") != base.fingerprint("lora")
    assert "changed: lr" in space_difference(base.describe(), wider.describe())


def test_incompatible_categorical_change_is_detected():
    old = build_space(_config()).describe()
    new = build_space(_config(params={"lr": {"float": [0.01, 1.0], "log": True},
                                      "width": {"choice": [4, 8]}})).describe()
    assert incompatible_parameters(old, new) == ["width"]


def test_grid_over_ablation_and_seed():
    grid = {"ablation": {"choice": ["full", "without_shared"]}, "seed": {"choice": [1, 2, 3]}}
    config = _config(params=grid,
                     sampler={"name": "grid"})
    space = build_space(config)
    assert space.grid("s.yaml") == {"ablation": ["full", "without_shared"], "seed": [1, 2, 3]}
    assert space.grid_size("s.yaml") == 6
    with pytest.raises(UserError, match="grid sampler cannot enumerate"):
        build_space(_config()).grid("s.yaml")
