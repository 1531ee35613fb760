from __future__ import annotations

import sys

import pytest

from genft_search.errors import UserError
from trainables import registry


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
        registry.check_data({"kind": "nope", "root": "/x"}, "t")


def test_check_data_goes_to_the_vision_module(tmp_path) -> None:
    with pytest.raises(UserError, match="task folder not found"):
        registry.check_data({"kind": "vtab1k", "root": str(tmp_path)}, "cifar")


# A task each data kind knows; a kind added to the registry without an entry here fails loudly.
_TASKS = {"vtab1k": "cifar", "fgvc": "cub200", "glue": "sst2"}


@pytest.mark.parametrize("kind", registry.data_kinds())
def test_every_data_kind_follows_the_trainable_protocol(kind: str, tmp_path) -> None:
    """train / check_data / check_model / evaluate_test, and one-line ``UserError``s before anything runs."""
    module = registry._module(kind)
    for attr in ("train", "check_data", "check_model", "evaluate_test"):
        assert callable(getattr(module, attr, None)), attr
    assert registry.get_trainable(kind) is module.train
    with pytest.raises(UserError, match=str(tmp_path / "missing")):
        registry.check_data({"kind": kind, "root": str(tmp_path / "missing")}, _TASKS[kind])
    with pytest.raises(UserError, match="model: checkpoint"):
        registry.check_model(kind, {"name": "x", "checkpoint": str(tmp_path / "missing.pth")})
