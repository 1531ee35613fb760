from __future__ import annotations

import inspect
import sys

import pytest

from genft_search.errors import UserError
from trainables import registry
from trainables.registry import TrainableModule


def test_vision_kinds_resolve_to_the_vision_trainable() -> None:
    from trainables import vision

    assert registry.get_trainable("vtab1k") is vision.train
    assert registry.get_trainable("fgvc") is vision.train


def test_importing_the_registry_does_not_import_trainables() -> None:
    import subprocess

    code = ("import sys, trainables.registry; "
            "print('trainables.vision' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_unknown_kind_is_a_user_error() -> None:
    with pytest.raises(UserError, match="data: kind"):
        registry.get_trainable("imagenet")
    with pytest.raises(UserError, match="data: kind"):
        registry.check_study("nope", {"kind": "nope", "root": "/x"}, {"name": "x"}, ["t"])


def test_check_study_goes_to_the_vision_module(tmp_path) -> None:
    with pytest.raises(UserError, match="task folder not found"):
        registry.check_study("vtab1k", {"kind": "vtab1k", "root": str(tmp_path)}, {"name": "x"}, ["cifar"])


def test_check_study_checks_every_task_then_the_model(vtab_root, tmp_path) -> None:
    """Every task's data is looked at (the second task's missing folder is found), then the model."""
    data = {"kind": "vtab1k", "root": str(vtab_root)}
    with pytest.raises(UserError, match="svhn"):
        registry.check_study("vtab1k", data, {"name": "x"}, ["eurosat", "svhn"])
    with pytest.raises(UserError, match="model: checkpoint"):
        registry.check_study("vtab1k", data, {"name": "x", "checkpoint": str(tmp_path / "missing.pth")},
                             ["eurosat"])


# A task each data kind knows; a kind added to the registry without an entry here fails loudly.
_TASKS = {"vtab1k": "cifar", "fgvc": "cub200", "glue": "sst2"}


@pytest.mark.parametrize("kind", registry.data_kinds())
def test_every_data_kind_follows_the_trainable_protocol(kind: str, tmp_path) -> None:
    """:class:`TrainableModule` (its functions, with its parameters), and one-line ``UserError``s from
    ``check_study`` before anything runs."""
    module = registry._module(kind)
    assert isinstance(module, TrainableModule)
    for attr in ("train", "check_data", "check_model", "evaluate_test"):
        expected = list(inspect.signature(getattr(TrainableModule, attr)).parameters)[1:]  # no self
        assert list(inspect.signature(getattr(module, attr)).parameters) == expected, attr
    assert registry.get_trainable(kind) is module.train
    missing = {"kind": kind, "root": str(tmp_path / "missing")}
    with pytest.raises(UserError, match=str(tmp_path / "missing")):
        registry.check_study(kind, missing, {"name": "x"}, [_TASKS[kind]])
    with pytest.raises(UserError, match="model: checkpoint"):
        module.check_model({"name": "x", "checkpoint": str(tmp_path / "missing.pth")})


def test_a_module_without_the_protocol_is_not_a_trainable_module() -> None:
    import types

    partial = types.ModuleType("partial")
    partial.train = lambda config: None  # type: ignore[attr-defined]
    assert not isinstance(partial, TrainableModule)
