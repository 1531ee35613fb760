"""Running a study: Ray Tune executes the trials, Optuna (in the study store) decides and remembers.

- planning (:func:`plan_study`, :class:`StudyPlan`, the sampler and scheduler factories): no side
  effects, every mistake in a study file is found here;
- the searcher (:class:`OptunaSearcher`): Optuna ask/tell on the study, as a Ray Tune ``Searcher``;
- :class:`OneEpochTopK` (``scheduler: {name: one_epoch_topk}``): one epoch each, the best ``k`` to the end;
- the run (:func:`run_study`, :func:`run_plan`, :func:`validate_study`): create or resume the studies
  and run their trials.

Importing this package does not import Ray; :class:`OptunaSearcher` and :class:`OneEpochTopK` (Ray classes)
load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genft_search.tune._plan import StudyPlan, make_sampler, make_scheduler, plan_study
from genft_search.tune._ray import ensure_ray
from genft_search.tune._run import run_plan, run_study, validate_study

if TYPE_CHECKING:
    from genft_search.tune._searcher import OptunaSearcher
    from genft_search.tune._topk import OneEpochTopK

__all__ = [
    "OneEpochTopK",
    "OptunaSearcher",
    "StudyPlan",
    "ensure_ray",
    "make_sampler",
    "make_scheduler",
    "plan_study",
    "run_plan",
    "run_study",
    "validate_study",
]


def __getattr__(name: str) -> Any:
    if name == "OptunaSearcher":
        from genft_search.tune._searcher import OptunaSearcher

        return OptunaSearcher
    if name == "OneEpochTopK":
        from genft_search.tune._topk import OneEpochTopK

        return OneEpochTopK
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
