"""Which trainable module serves which data kind; modules are imported only when asked for.

Every data kind's module follows :class:`TrainableModule` (``trainables.vision`` for ``vtab1k`` and
``fgvc``, ``trainables.text`` for ``glue``); the engine reaches them only through the functions here:
:func:`get_trainable`, :func:`check_study` (before anything runs) and :func:`evaluate_test`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from genft_search.errors import UserError

__all__ = ["TrainableModule", "check_study", "data_kinds", "evaluate_test", "get_trainable"]

_MODULES: dict[str, str] = {
    "vtab1k": "trainables.vision",
    "fgvc": "trainables.vision",
    "glue": "trainables.text",
}


@runtime_checkable
class TrainableModule(Protocol):
    """What a data kind's module provides (a module satisfies it through its functions)."""

    def train(self, config: dict[str, Any]) -> None:
        """The Ray Tune function trainable: one trial, reporting once per evaluated epoch."""

    def check_data(self, data_cfg: Mapping[str, Any], task: str) -> None:
        """Raise ``UserError`` when ``task`` cannot be loaded (missing files, bad names), before any trial."""

    def check_model(self, model_cfg: Mapping[str, Any]) -> None:
        """Raise ``UserError`` when the model cannot be built; prepares the built-in models."""

    def evaluate_test(self, config: dict[str, Any]) -> dict[str, Any]:
        """Retrain a chosen trial config under the honest protocol and return its test metrics."""


if TYPE_CHECKING:  # mypy checks that each registered module satisfies the protocol
    from trainables import text, vision

    _CHECKED: tuple[TrainableModule, ...] = (vision, text)


def data_kinds() -> list[str]:
    """The data kinds a study may name in ``data.kind``."""
    return sorted(_MODULES)


def _module(data_kind: str) -> TrainableModule:
    try:
        name = _MODULES[data_kind]
    except KeyError:
        raise UserError(
            f"data: kind: unknown data kind {data_kind!r}; expected one of {', '.join(data_kinds())}"
        ) from None
    return cast(TrainableModule, importlib.import_module(name))


def get_trainable(data_kind: str) -> Callable[[dict[str, Any]], None]:
    """The Ray Tune function trainable for ``data_kind``."""
    return _module(data_kind).train


def check_study(data_kind: str, data_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any],
                tasks: Iterable[str]) -> None:
    """Check a study's data and model for its data kind before anything runs.

    Args:
        data_kind: the study's ``data.kind``.
        data_cfg: the study's ``data`` section (``root``, ...).
        model_cfg: the study's ``model`` section (``name``, ``checkpoint``, ...).
        tasks: the study's tasks; each is loaded far enough to find missing files and bad names.

    Raises:
        UserError: one line naming the field and what was expected (an unknown kind, a task that cannot
            be loaded, a model that cannot be built).
    """
    module = _module(data_kind)
    for task in tasks:
        module.check_data(data_cfg, task)
    module.check_model(model_cfg)


def evaluate_test(trial_config: Mapping[str, Any]) -> dict[str, Any]:
    """Retrain a chosen trial config under the honest protocol and return its test metrics."""
    data = trial_config.get("data") or {}
    return _module(str(data.get("kind"))).evaluate_test(dict(trial_config))
