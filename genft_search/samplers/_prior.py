"""A prior-guided Optuna sampler: draws around an expert setting, around the incumbent, or from a base
sampler, in proportions that follow which of them produced the best trials (after PriorBand, Mallik et
al., NeurIPS 2023).

The paper's per-task settings (arXiv 2506.11042, Appendix B) were chosen on test data and may be
optimistic, so the prior is a starting bias, not a constraint: once trials have reached a rung, the
share of each source follows its success rate among the best third of the trials at
the highest rung reached (blended with the starting mix while few trials are there), and a prior whose
trials lose fades towards the floor.

Nothing is kept between trials but caches: each trial's source is a trial system attr
(``genft:prior_source``, written through :mod:`genft_search.store`), the mix is recomputed from the
finished trials in the store at every ask, and the draws of a trial are seeded by the sampler's seed and
the trial's number, so a resumed study continues as the uninterrupted one would.
"""

from __future__ import annotations

import math
import secrets
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from genft_search import store

if TYPE_CHECKING:
    from optuna.study import Study

__all__ = ["CONFIDENCE", "SOURCES", "PriorSampler", "PriorState"]

#: where a proposal comes from; trials enqueued by hand (warm starts that are not the prior, retries of
#: such trials) are ``enqueued`` and count for no source
SOURCES = ("prior", "incumbent", "base")
_ENQUEUED = "enqueued"
_FIXED = "fixed_params"  # Optuna's system attr of an enqueued trial


@dataclass(frozen=True)
class Confidence:
    """How much a confidence level trusts the prior point."""

    #: standard deviation of a numeric draw, as a fraction of the range (log range for log parameters)
    width: float
    #: probability that a categorical draw takes the prior's choice
    mass: float
    #: the prior's share of proposals before any trial has reached a rung
    share: float


CONFIDENCE: Mapping[str, Confidence] = {
    "low": Confidence(width=0.30, mass=0.5, share=0.4),
    "medium": Confidence(width=0.15, mass=0.7, share=0.6),
    "high": Confidence(width=0.05, mass=0.9, share=0.8),
}
#: every available source keeps at least this share, so a faded source can come back
_FLOOR = 0.05
#: the starting mix weighs as much as this many trials at the rung
_PSEUDO = 4


@dataclass(frozen=True)
class PriorState:
    """The sampler's state, a function of the finished trials only."""

    #: each source's probability for the next proposal
    mix: dict[str, float]
    #: the highest step at least two finished trials reported (None before that)
    rung: int | None
    #: number of the best trial at that rung (the incumbent's centre)
    incumbent: int | None
    #: per source: (trials among the best third at the rung, trials at the rung)
    evidence: dict[str, tuple[int, int]]


def _source_of(trial: FrozenTrial) -> str | None:
    value = trial.system_attrs.get(store.ATTR_PRIOR_SOURCE)
    return str(value) if value is not None else None


def _curve(trial: FrozenTrial) -> dict[int, float]:
    values = {int(k): float(v) for k, v in trial.intermediate_values.items() if math.isfinite(v)}
    if not values and trial.state == TrialState.COMPLETE and trial.values and math.isfinite(trial.values[0]):
        values = {1: float(trial.values[0])}
    return values


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


class PriorSampler(BaseSampler):
    """Mixes draws around ``prior`` (the expert point), around the incumbent, and from ``base``.

    Args:
        prior: parameter name -> value (the task's paper setting or a ``warm_start`` row); names the
            study does not search are ignored, values outside a range are moved to its edge.
        base: the sampler that proposes the ``base`` share (Optuna's TPE when None).
        confidence: ``low``, ``medium`` or ``high`` (see :data:`CONFIDENCE`).
        seed: seeds every draw together with the trial number (random when None).
    """

    def __init__(self, prior: Mapping[str, Any], base: BaseSampler | None = None, *,
                 confidence: str = "medium", seed: int | None = None) -> None:
        if confidence not in CONFIDENCE:
            raise ValueError(f"confidence {confidence!r} is unknown; expected one of {', '.join(CONFIDENCE)}")
        if not prior:
            raise ValueError("the prior point is empty; expected parameter values")
        from optuna.samplers import TPESampler

        self._prior = dict(prior)
        self._confidence = CONFIDENCE[confidence]
        self._seed = int(seed) if seed is not None else secrets.randbits(32)
        self._base = base if base is not None else TPESampler(seed=self._seed)
        self._base_random = type(self._base) is RandomSampler  # then base draws are per-trial seeded too
        self._plans: dict[int, tuple[str, dict[str, Any]]] = {}  # trial id -> (source, centre): a cache

    @property
    def prior(self) -> dict[str, Any]:
        return dict(self._prior)

    # the state ------------------------------------------------------------------------------------
    def state(self, trials: Sequence[FrozenTrial], direction: StudyDirection = StudyDirection.MAXIMIZE
              ) -> PriorState:
        """The mix for the next proposal, from the finished (COMPLETE or PRUNED) ``trials``."""
        share = self._confidence.share
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        curves = {t.number: _curve(t) for t in finished}
        steps: dict[int, int] = {}
        for curve in curves.values():
            for step in curve:
                steps[step] = steps.get(step, 0) + 1
        reached = [s for s, n in steps.items() if n >= 2]
        if not reached:
            return PriorState({"prior": share, "incumbent": 0.0, "base": 1 - share}, None, None, {})
        rung = max(reached)
        at_rung = [t for t in finished if rung in curves[t.number]]
        sign = -1.0 if direction == StudyDirection.MAXIMIZE else 1.0
        ranked = sorted(at_rung, key=lambda t: (sign * curves[t.number][rung], t.number))
        top = {t.number for t in ranked[:max(1, len(ranked) // 3)]}
        evidence: dict[str, tuple[int, int]] = {}
        for source in SOURCES:
            mine = [t for t in at_rung if _source_of(t) == source]
            evidence[source] = (sum(t.number in top for t in mine), len(mine))
        # each source's success rate (Laplace-smoothed), normalised, blended with the starting mix as if
        # that were _PSEUDO trials of evidence
        rates = {s: (evidence[s][0] + 1) / (evidence[s][1] + 2) for s in SOURCES}
        total = sum(rates.values())
        start = {"prior": share, "incumbent": 0.0, "base": 1 - share}
        n = len(at_rung)
        mix = {s: max(_FLOOR, (_PSEUDO * start[s] + n * rates[s] / total) / (_PSEUDO + n)) for s in SOURCES}
        total = sum(mix.values())
        return PriorState({s: v / total for s, v in mix.items()}, rung, ranked[0].number, evidence)

    def choose(self, number: int, state: PriorState) -> str:
        """The source of trial ``number`` under ``state`` (seeded by the trial number)."""
        u = self._rng(number, "source").random()
        cumulative = 0.0
        for source in SOURCES:
            cumulative += state.mix[source]
            if u < cumulative:
                return source
        return SOURCES[-1]

    # Optuna's sampler API -------------------------------------------------------------------------
    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        """Decide the trial's source from the store and record it on the trial."""
        centre: dict[str, Any] = self._prior
        fixed = trial.system_attrs.get(_FIXED)
        if isinstance(fixed, dict):
            source = self._enqueued_source(study, fixed, trial)
        else:
            finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            state = self.state(finished, study.direction)
            source = self.choose(trial.number, state)
            if source == "incumbent":
                best = next(t for t in finished if t.number == state.incumbent)
                centre = dict(best.params)
        store.tag_prior_source(study, trial, source)
        self._plans[trial._trial_id] = (source, centre)
        self._base.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._plan(trial)[0] != "base" or self._base_random:
            return {}
        return self._base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space or self._plan(trial)[0] != "base":
            return {}
        return self._base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        source, centre = self._plan(trial)
        if source == "base" and not self._base_random:
            return self._base.sample_independent(study, trial, param_name, param_distribution)
        if source in ("prior", "incumbent") and param_name in centre:
            return self._around(centre[param_name], param_distribution, self._rng(trial.number, param_name))
        uniform = RandomSampler(seed=int(self._rng(trial.number, param_name).integers(2**31)))
        return uniform.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._plans.pop(trial._trial_id, None)
        self._base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()

    # internals ------------------------------------------------------------------------------------
    def _plan(self, trial: FrozenTrial) -> tuple[str, dict[str, Any]]:
        plan = self._plans.get(trial._trial_id)
        if plan is None:  # a trial this process did not start: its recorded source, around the prior
            plan = (_source_of(trial) or "base", self._prior)
        return plan

    def _enqueued_source(self, study: Study, fixed: Mapping[str, Any], trial: FrozenTrial) -> str:
        shared = [k for k in self._prior if k in fixed]
        if shared and all(_same(fixed[k], self._prior[k]) for k in shared):
            return "prior"
        original = trial.user_attrs.get(store.ATTR_RETRY_OF)
        if isinstance(original, int):
            for old in study.get_trials(deepcopy=False):
                if old.number == original:
                    return _source_of(old) or _ENQUEUED
        return _ENQUEUED

    def _rng(self, number: int, tag: str) -> np.random.Generator:
        return np.random.default_rng([self._seed, number, zlib.crc32(tag.encode())])

    def _around(self, value: Any, dist: BaseDistribution, rng: np.random.Generator) -> Any:
        """A draw near ``value``: a normal in the parameter's own (log) scale, or mass on the choice."""
        if isinstance(dist, CategoricalDistribution):
            choices = list(dist.choices)
            hits = [i for i, c in enumerate(choices) if _same(c, value)]
            others = [i for i in range(len(choices)) if i not in hits]
            if hits and (not others or rng.random() < self._confidence.mass):
                return choices[hits[0]]
            pick = others if hits else list(range(len(choices)))
            return choices[pick[int(rng.integers(len(pick)))]]
        assert isinstance(dist, (FloatDistribution, IntDistribution))
        low, high, log = float(dist.low), float(dist.high), dist.log
        if high <= low:
            return dist.low
        to = math.log if log else float
        back = math.exp if log else float
        try:
            centre = min(max(float(value), low), high)
        except (TypeError, ValueError):
            centre = math.exp((math.log(low) + math.log(high)) / 2) if log else (low + high) / 2
        lo, hi, c = to(low), to(high), to(centre)
        sd = self._confidence.width * (hi - lo)
        x = c
        for _ in range(32):  # a truncated normal by rejection; the centre if every draw falls outside
            draw = float(rng.normal(c, sd))
            if lo <= draw <= hi:
                x = draw
                break
        out = min(max(back(x), low), high)
        step = getattr(dist, "step", None)
        if step is not None:
            out = min(max(low + round((out - low) / step) * step, low), high)
        if isinstance(dist, IntDistribution):
            return round(out)
        return float(out)
