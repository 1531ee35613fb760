"""Method registry: name -> attach function, so studies can compare methods through one interface."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from genft_search.method._base import MethodAdapter
from genft_search.method._baselines import attach_full, attach_linear, attach_lora
from genft_search.method._genft import attach_genft

__all__ = ["attach_method", "list_methods", "register_method"]

AttachFn = Callable[[nn.Module, Mapping[str, Any]], MethodAdapter]
F = TypeVar("F", bound=AttachFn)

_METHODS: dict[str, AttachFn] = {}


def register_method(name: str) -> Callable[[F], F]:
    """Decorator: make ``attach_method(name, ...)`` call the decorated ``fn(model, config)``."""

    def decorator(fn: F) -> F:
        if name in _METHODS and _METHODS[name] is not fn:
            raise ValueError(f"method {name!r} is already registered")
        _METHODS[name] = fn
        return fn

    return decorator


def list_methods() -> list[str]:
    return sorted(_METHODS)


def attach_method(name: str, model: nn.Module, config: Mapping[str, Any] | None = None) -> MethodAdapter:
    """Attach method ``name`` to ``model`` in place; ``config`` is the flat trial config (unknown keys
    such as ``lr`` are ignored by every method)."""
    try:
        fn = _METHODS[name]
    except KeyError:
        known = ", ".join(list_methods())
        raise ValueError(f"method: {name!r} is not registered; expected one of {known}") from None
    return fn(model, dict(config or {}))


register_method("genft")(attach_genft)
register_method("lora")(attach_lora)
register_method("linear")(attach_linear)
register_method("full")(attach_full)
