"""Fixtures for the method tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from torch import nn

from .method_helpers import make_bert, make_vit


@pytest.fixture(params=["vit", "bert", "roberta"])
def family_model(request) -> tuple[str, Callable[..., nn.Module]]:
    """(family, factory) for each supported architecture."""
    if request.param == "vit":
        return "vit", make_vit
    return "text", (lambda seed=0, **kw: make_bert(seed, roberta=request.param == "roberta", **kw))
