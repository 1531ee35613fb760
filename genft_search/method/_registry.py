"""Method registry: name -> attach function, so studies can compare methods through one interface."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from genft_search.method._base import MethodAdapter
from genft_search.method._baselines import attach_full, attach_linear
from genft_search.method._genft import attach_genft
from genft_search.method._lora import attach_lora, lora_settings
from genft_search.method.config import GenFTConfig

__all__ = ["attach_method", "check_method_config", "list_methods", "register_method"]

AttachFn = Callable[[nn.Module, Mapping[str, Any]], MethodAdapter]
F = TypeVar("F", bound=AttachFn)

CheckFn = Callable[[Mapping[str, Any]], object]
_METHODS: dict[str, AttachFn] = {}
_CHECKS: dict[str, CheckFn] = {}


def register_method(name: str, *, check: CheckFn | None = None) -> Callable[[F], F]:
    """Decorator: make ``attach_method(name, ...)`` call the decorated ``fn(model, config)``.

    Args:
        name: the method's name in study files (``method:``) and trial configs.
        check: validates a flat trial config without a model (``ValueError`` naming the key), so a study
            can refuse a bad setting before any trial runs.

    Returns:
        The decorator; it returns ``fn`` unchanged.

    Raises:
        ValueError: (when decorating) ``name`` is already registered to another function.
    """

    def decorator(fn: F) -> F:
        if name in _METHODS and _METHODS[name] is not fn:
            raise ValueError(f"method {name!r} is already registered")
        _METHODS[name] = fn
        if check is not None:
            _CHECKS[name] = check
        return fn

    return decorator


def list_methods() -> list[str]:
    return sorted(_METHODS)


def attach_method(name: str, model: nn.Module, config: Mapping[str, Any] | None = None) -> MethodAdapter:
    """Attach method ``name`` to ``model`` in place, behind the one adapter interface of ``docs/method.md``.

    Args:
        name: a registered method (:func:`list_methods`: GenFT, LoRA on GenFT's q/v targets, linear
            probing, full fine-tuning).
        model: a timm ViT or a transformers text encoder (with its task head).
        config: the flat trial config; each method reads the keys it knows (GenFT: the
            :class:`GenFTConfig` fields; LoRA: ``lora_r``, ...) and ignores the rest (``lr``, ...).

    Returns:
        The method's :class:`MethodAdapter` (its parameters, merge/unmerge, state dict).

    Raises:
        ValueError: ``name`` is not registered, or the method refuses ``model`` or ``config``.
    """
    try:
        fn = _METHODS[name]
    except KeyError:
        known = ", ".join(list_methods())
        raise ValueError(f"method: {name!r} is not registered; expected one of {known}") from None
    return fn(model, dict(config or {}))


def check_method_config(name: str, config: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` (naming the key) if ``config`` has an invalid setting for ``name``."""
    if name not in _METHODS:
        known = ", ".join(list_methods())
        raise ValueError(f"method: {name!r} is not registered; expected one of {known}")
    check = _CHECKS.get(name)
    if check is not None:
        check(config)


register_method("genft", check=GenFTConfig.from_mapping)(attach_genft)
register_method("lora", check=lora_settings)(attach_lora)
register_method("linear")(attach_linear)
register_method("full")(attach_full)
