"""The study file schema and loader: env expansion, strictness, one-line errors naming file and field."""

from __future__ import annotations

import pytest

from genft_search.config import METHODS, PROTOCOLS, load_study_config, parse_duration
from genft_search.errors import UserError
from tests.support.engine import toy_study

ISSUE_EXAMPLE = """
name: vtab_structured
storage: sqlite:///genft_studies.db
method: genft
model: {name: vit_base_patch16_224, checkpoint: ${GENFT_VIT_CKPT}}
data: {kind: vtab1k, root: ${GENFT_DATA}/vtab-1k, tasks: [dsprites_loc, dsprites_ori]}
protocol: honest
space: paper
params:
  shared_dim: {int: [8, 128], step: 2}
  sigma1: {choice: [relu, leaky_relu, tanh, gelu, identity]}
  lr: {float: [1.0e-4, 1.0e-2], log: true}
fixed: {epochs: 100, batch_size: 64}
sampler: {name: tpe, seed: 42}
scheduler: {name: asha, grace_period: 10, reduction_factor: 3}
budget: {n_trials: 64, timeout: 12h}
resources: {cpu: 4, gpu: 1}
warm_start: paper
objective: {metric: val_top1, direction: maximize}
"""


def test_issue_example_parses_with_env_expansion(write_study, monkeypatch):
    monkeypatch.setenv("GENFT_VIT_CKPT", "/ckpt/ViT-B_16.npz")
    monkeypatch.setenv("GENFT_DATA", "/data")
    config = load_study_config(write_study(ISSUE_EXAMPLE))
    assert config.model.model_dump()["checkpoint"] == "/ckpt/ViT-B_16.npz"
    assert config.data.root == "/data/vtab-1k"
    assert config.data.tasks == ["dsprites_loc", "dsprites_ori"]
    assert config.budget.timeout == 12 * 3600
    assert config.resources.gpu == 1.0
    assert config.params["shared_dim"].int_ == (8, 128)
    assert config.params["lr"].log is True
    assert config.sampler.kwargs == {} and config.sampler.seed == 42
    assert config.scheduler.kwargs == {"grace_period": 10, "reduction_factor": 3}
    assert config.study_name("dsprites_loc") == "vtab_structured/dsprites_loc"
    assert config.directions == ["maximize"]


def test_env_default_and_typed_whole_value(write_study, monkeypatch):
    monkeypatch.delenv("GENFT_TEST_ROOT", raising=False)
    monkeypatch.setenv("GENFT_TEST_TRIALS", "7")
    doc = toy_study("x", budget={"n_trials": "${GENFT_TEST_TRIALS}"},
                    data={"kind": "vtab1k", "root": "${GENFT_TEST_ROOT:-/fallback}/v", "tasks": ["a"]})
    config = load_study_config(write_study(doc))
    assert config.budget.n_trials == 7
    assert config.data.root == "/fallback/v"


def test_missing_env_names_file_field_and_variable(write_study, monkeypatch):
    monkeypatch.delenv("GENFT_NOT_SET_X", raising=False)
    path = write_study(toy_study("x", model={"name": "${GENFT_NOT_SET_X}"}))
    with pytest.raises(UserError) as info:
        load_study_config(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "model.name" in message and "GENFT_NOT_SET_X" in message


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(nmae="x"), "nmae: unknown key"),
        (lambda d: d["budget"].update(n_trials=0), "budget.n_trials"),
        (lambda d: d["params"].update(lr={"float": [1.0, 0.1]}), "params.lr"),
        (lambda d: d["params"].update(lr={"float": [0.0, 0.1], "log": True}), "params.lr"),
        (lambda d: d["params"].update(lr={"int": [1, 2], "choice": [1]}), "params.lr"),
        (lambda d: d["params"].update(lr={"choice": [1, 2], "log": True}), "params.lr"),
        (lambda d: d["params"].update(lr={"int": [1, 8], "step": 0.5}), "params.lr"),
        (lambda d: d.update(method="genfft"), "method"),
        (lambda d: d.update(protocol="test"), "protocol"),
        (lambda d: d["fixed"].update(lr=0.1), "both params and fixed"),
        (lambda d: d["fixed"].update(data=1), "reserved"),
        (lambda d: d.update(objective=[{"metric": "a"}, {"metric": "a"}]), "metric twice"),
        (lambda d: d.update(budget={"n_trials": 2, "timeout": "soon"}), "budget.timeout"),
        (lambda d: d.update(trainable="no colon"), "module.path:function"),
        (lambda d: d["data"].update(tasks=["a", "a"]), "repeated"),
        (lambda d: d.update(resources={"cpu": -1}), "resources.cpu"),
    ],
)
def test_bad_values_are_one_line_naming_the_field(write_study, mutate, field):
    doc = toy_study("x")
    mutate(doc)
    path = write_study(doc)
    with pytest.raises(UserError) as info:
        load_study_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert field in message


def test_yaml_errors_give_the_line(write_study):
    path = write_study("name: x\nmodel: {name: toy\ndata: 1\n")
    with pytest.raises(UserError, match=r"line \d+, column \d+: YAML syntax error"):
        load_study_config(path)
    path = write_study("name: x\nname: y\n", "dup.yaml")
    with pytest.raises(UserError, match="'name' is repeated"):
        load_study_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="study file not found"):
        load_study_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("text", "seconds"), [(90, 90), ("90s", 90), ("30m", 1800), ("12h", 43200),
                                               ("1h30m", 5400), ("1d", 86400), ("2.5m", 150)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "0", "12 hours", True])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_several_objectives(write_study):
    doc = toy_study("x", objective=[{"metric": "val_top1", "direction": "maximize"},
                                    {"metric": "trainable_params", "direction": "minimize"}])
    config = load_study_config(write_study(doc))
    assert config.directions == ["maximize", "minimize"]
    assert [o.metric for o in config.objectives] == ["val_top1", "trainable_params"]


def test_method_and_protocol_names_are_defined_once():
    """The schema's methods are the registry's, each with a default preset; the trainables check the
    schema's protocols."""
    from genft_search.method import list_methods
    from genft_search.space import DEFAULT_PRESET
    from trainables import text, vision

    assert sorted(METHODS) == list_methods() == sorted(DEFAULT_PRESET)
    assert PROTOCOLS == ("honest", "paper") and vision.PROTOCOLS is text.PROTOCOLS is PROTOCOLS
