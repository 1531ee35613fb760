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
