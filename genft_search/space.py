"""Search spaces: named presets plus a study's overrides, mapped to Optuna distributions.

Parameters are sampled define-by-run, so a conditional parameter (``when:``) is only suggested when
its condition holds and Optuna's samplers never see values that had no effect. The space's
fingerprint is stored in each study, so resuming with a different space is caught.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import optuna
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)

from genft_search.config import ParamSpec, StudyConfig
from genft_search.errors import UserError
from genft_search.paper import paper_setting  # re-exported for the engine's `warm_start: paper`

__all__ = [
    "DEFAULT_PRESET",
    "SearchSpace",
    "build_space",
    "incompatible_parameters",
    "paper_setting",
    "preset_names",
    "space_difference",
]

#: the preset a study gets when it names none
DEFAULT_PRESET = {"genft": "paper", "lora": "lora", "linear": "training", "full": "training"}

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "in": lambda value, options: value in options,
}


@cache
def _preset_file(name: str) -> dict[str, Any]:
    text = resources.files("genft_search.presets").joinpath(name).read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def preset_names() -> list[str]:
    """The names a study file may give as ``space``."""
    return sorted(_preset_file("spaces.yaml"))


@dataclass(frozen=True)
class Param:
    """One searched parameter: its Optuna distribution and the conditions under which it is sampled."""

    name: str
    distribution: BaseDistribution
    when: tuple[tuple[str, str, Any], ...] = ()

    def active(self, values: Mapping[str, Any]) -> bool:
        """True when every condition holds for the already-sampled ``values``."""
        for other, op, target in self.when:
            if other not in values:
                return False
            try:
                if not _OPS[op](values[other], target):
                    return False
            except TypeError:
                return False
        return True

    def describe(self) -> dict[str, Any]:
        out = json.loads(distribution_to_json(self.distribution))
        if self.when:
            out["when"] = [list(c) for c in self.when]
        return out


class SearchSpace:
    """An ordered set of :class:`Param`; conditions only refer to parameters sampled before them."""

    def __init__(self, params: list[Param]) -> None:
        self.params: dict[str, Param] = {p.name: p for p in params}

    def __len__(self) -> int:
        return len(self.params)

    def __contains__(self, name: object) -> bool:
        return name in self.params

    def names(self) -> list[str]:
        return list(self.params)

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest every active parameter on ``trial`` (define-by-run), in order."""
        values: dict[str, Any] = {}
        for param in self.params.values():
            if param.active(values):
                values[param.name] = _suggest(trial, param.name, param.distribution)
        return values

    def contains(self, name: str, value: Any) -> bool:
        """Whether ``value`` is a legal value of parameter ``name`` (for warm starts)."""
        dist = self.params[name].distribution
        try:
            return bool(dist._contains(dist.to_internal_repr(value)))
        except (ValueError, TypeError):
            return False

    def describe(self) -> dict[str, dict[str, Any]]:
        """A JSON-friendly description, stored in each study beside the fingerprint."""
        return {name: p.describe() for name, p in self.params.items()}

    def fingerprint(self, method: str) -> str:
        """A short hash of the method and every distribution and condition."""
        blob = json.dumps({"method": method, "space": self.describe()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def grid(self, source: str) -> dict[str, list[Any]]:
        """The grid for Optuna's ``GridSampler``: choices and stepped ranges only."""
        out: dict[str, list[Any]] = {}
        for name, param in self.params.items():
            dist = param.distribution
            if isinstance(dist, CategoricalDistribution):
                out[name] = list(dist.choices)
            elif isinstance(dist, IntDistribution) and not dist.log:
                out[name] = list(range(dist.low, dist.high + 1, dist.step))
            elif isinstance(dist, FloatDistribution) and dist.step is not None:
                n = round((dist.high - dist.low) / dist.step)
                out[name] = [round(dist.low + i * dist.step, 12) for i in range(n + 1)]
            else:
                raise UserError(
                    f"{source}: params.{name}: the grid sampler cannot enumerate a continuous range; "
                    "expected choice, an int range, or a float range with step"
                )
        return out

    def grid_size(self, source: str) -> int:
        return math.prod(len(v) for v in self.grid(source).values())


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _distribution(name: str, spec: ParamSpec, where: str) -> BaseDistribution:
    try:
        if spec.choice is not None:
            return CategoricalDistribution(list(spec.choice))
        if spec.int_ is not None:
            lo, hi = spec.int_
            step = int(spec.step or 1)
            if (hi - lo) % step:
                raise ValueError(f"range [{lo}, {hi}] is not a whole number of steps of {step}")
            return IntDistribution(lo, hi, log=spec.log, step=step)
        assert spec.float_ is not None  # the schema holds exactly one of choice, int and float
        low, high = spec.float_
        return FloatDistribution(float(low), float(high), log=spec.log, step=spec.step)
    except (ValueError, ArithmeticError) as exc:  # decimal arithmetic on extreme steps
        raise UserError(f"{where}: params.{name}: {exc}") from None


def _spec(name: str, raw: Any, where: str) -> ParamSpec:
    from pydantic import ValidationError

    try:
        return ParamSpec.model_validate(raw)
    except ValidationError as exc:  # presets are data too; report them like study files
        msg = str(exc.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
        raise UserError(f"{where}: {name}: {msg}") from None


def build_space(config: StudyConfig) -> SearchSpace:
    """The study's search space: its preset (or the method's default), then ``params``, minus ``fixed``.

    A ``fixed`` value removes the preset's parameter of that name; ``params: {name: null}`` removes one
    without fixing it. Raises ``UserError`` for unknown presets, impossible ranges and conditions on
    parameters that are not sampled before.
    """
    source = config.source
    presets = _preset_file("spaces.yaml")
    preset = config.space if config.space is not None else DEFAULT_PRESET[config.method]
    if preset not in presets:
        raise UserError(f"{source}: space: unknown preset {preset!r}; expected one of "
                        f"{', '.join(preset_names())}")
    specs: dict[str, ParamSpec] = {
        name: _spec(name, raw, f"preset {preset!r}") for name, raw in (presets[preset] or {}).items()
    }
    for name, spec in config.params.items():
        if spec is None:
            if name not in specs:
                raise UserError(
                    f"{source}: params.{name}: null removes a preset parameter, but preset {preset!r} "
                    f"has none called {name!r}; expected one of {', '.join(specs) or '(none)'}"
                )
            del specs[name]
        else:
            specs[name] = spec
    for name in config.fixed:
        specs.pop(name, None)

    params: list[Param] = []
    seen: set[str] = set()
    # unconditional parameters first, so a condition may name any of them
    ordered = sorted(specs.items(), key=lambda item: item[1].when is not None)
    for name, spec in ordered:
        when: list[tuple[str, str, Any]] = []
        for other, ops in (spec.when or {}).items():
            if other not in seen:
                raise UserError(
                    f"{source}: params.{name}.when: refers to {other!r}, which is not an unconditional "
                    f"searched parameter; expected one of {', '.join(sorted(seen)) or '(none)'}"
                )
            for op, target in ops.items():
                when.append((other, op, target))
        params.append(Param(name, _distribution(name, spec, source), tuple(when)))
        seen.add(name)
    return SearchSpace(params)


def space_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """A short human summary of how two :meth:`SearchSpace.describe` results differ."""
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    parts = [f"{label}: {', '.join(names)}" for label, names in
             (("changed", changed), ("added", added), ("removed", removed)) if names]
    return "; ".join(parts) or "no parameter differs"


def incompatible_parameters(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Parameters Optuna cannot continue a study over: another type, or other categorical choices."""
    out = []
    for name in set(old) & set(new):
        a, b = old[name], new[name]
        if a.get("name") != b.get("name") or (
            a.get("name") == "CategoricalDistribution" and a.get("attributes") != b.get("attributes")
        ):
            out.append(name)
    return sorted(out)
