"""Which trainable module serves which data kind; modules are imported only when asked for.

Each trainable module exposes ``train(config)`` (the Ray Tune function trainable),
``check_data(data_cfg, task)`` (raises ``UserError`` before anything runs when data is missing)
and ``evaluate_test(trial_config) -> dict`` (retrain the chosen setting and test once).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from genft_search.errors import UserError

__all__ = ["check_data", "check_model", "data_kinds", "evaluate_test", "get_trainable"]

_MODULES: dict[str, str] = {
    "vtab1k": "trainables.vision",
    "fgvc": "trainables.vision",
    "glue": "trainables.text",
}


def data_kinds() -> list[str]:
    """The data kinds a study may name in ``data.kind``."""
    return sorted(_MODULES)


def _module(data_kind: str) -> ModuleType:
    try:
        name = _MODULES[data_kind]
    except KeyError:
        raise UserError(
            f"data: kind: unknown data kind {data_kind!r}; expected one of {', '.join(data_kinds())}"
        ) from None
    return importlib.import_module(name)


def get_trainable(data_kind: str) -> Callable[[dict[str, Any]], None]:
    """The Ray Tune function trainable for ``data_kind``."""
    return _module(data_kind).train


def check_data(data_cfg: Mapping[str, Any], task: str) -> None:
    """Raise ``UserError`` when ``task`` of ``data_cfg`` cannot be loaded (missing files, bad names)."""
    _module(str(data_cfg.get("kind"))).check_data(data_cfg, task)


def check_model(data_kind: str, model_cfg: Mapping[str, Any]) -> None:
    """Raise ``UserError`` when the study's model cannot be built; prepares built-in models."""
    _module(data_kind).check_model(model_cfg)


def evaluate_test(trial_config: Mapping[str, Any]) -> dict[str, Any]:
    """Retrain a chosen trial config under the honest protocol and return its test metrics."""
    data = trial_config.get("data") or {}
    return _module(str(data.get("kind"))).evaluate_test(dict(trial_config))
