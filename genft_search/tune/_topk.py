"""``scheduler: {name: one_epoch_topk, k: K}``: train every configuration one epoch, keep the best ``k``,
train those to the end (a strong, simple baseline for multi-fidelity search; importing this imports Ray).

Each trial pauses after its first epoch (the trainables checkpoint every epoch, so a kept trial goes on
from there). Once the searcher has handed out all its trials and every one of them has reported its
first epoch (or ended), the ``k`` best first-epoch scores are resumed and the others stopped (their
studies' trials are PRUNED at budget 1). The run must not cap concurrency by counting live trials
(paused trials are live): ``_run.py`` leaves ``max_concurrent_trials`` unset for this scheduler, and
Ray runs as many trials as the resources fit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

__all__ = ["OneEpochTopK"]


class OneEpochTopK(FIFOScheduler):
    """Keeps the ``k`` trials with the best score after ``first`` epochs (``time_attr``) and stops the rest.

    Args:
        k: how many configurations train to the end (>= 1).
        first: the epochs every configuration gets before the cut (1).
        time_attr: the result key that counts epochs (the engine passes ``epoch``).
        metric: the score to rank by; ``mode``: ``max`` or ``min`` (the engine passes the objective's).
    """

    def __init__(self, k: int, first: int = 1, time_attr: str = "epoch", metric: str | None = None,
                 mode: str | None = None) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        if isinstance(first, bool) or not isinstance(first, int) or first < 1:
            raise ValueError(f"first must be an integer >= 1, got {first!r}")
        super().__init__()
        self._k, self._first, self._time_attr = k, first, time_attr
        self._metric, self._mode = metric, mode
        self._scores: dict[str, float] = {}  # trial id -> score after `first` epochs
        self._kept: set[str] | None = None  # None until the cut

    @property
    def kept(self) -> set[str] | None:
        """The ids of the kept trials, once decided."""
        return None if self._kept is None else set(self._kept)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def on_trial_result(self, tune_controller: TuneController, trial: Trial, result: dict) -> str:
        if self._kept is not None:
            return TrialScheduler.CONTINUE if trial.trial_id in self._kept else TrialScheduler.STOP
        step = result.get(self._time_attr)
        if not isinstance(step, (int, float)) or step < self._first:
            return TrialScheduler.CONTINUE
        value = result.get(self._metric or "")
        if isinstance(value, (int, float)):
            self._scores[trial.trial_id] = float(value)
        else:  # no score to rank by: it cannot be among the best
            return TrialScheduler.STOP
        self._decide(tune_controller, waiting=trial)
        if self._kept is not None:
            return TrialScheduler.CONTINUE if trial.trial_id in self._kept else TrialScheduler.STOP
        return TrialScheduler.PAUSE

    def choose_trial_to_run(self, tune_controller: TuneController) -> Trial | None:
        trials = tune_controller.get_trials()
        for trial in trials:
            if trial.status == Trial.PENDING:
                return trial
        self._decide(tune_controller)
        if self._kept is None:
            return None
        for trial in trials:
            if trial.status == Trial.PAUSED and trial.trial_id in self._kept:
                return trial
        return None

    def debug_string(self) -> str:
        state = "undecided" if self._kept is None else f"kept {len(self._kept)}"
        return f"one epoch top-k: k={self._k}, {len(self._scores)} scored, {state}"

    def _decide(self, tune_controller: TuneController, waiting: Trial | None = None) -> None:
        """Cut once no further trial can come and every live trial has its first score."""
        if self._kept is not None or not tune_controller.search_alg.is_finished():
            return
        live = [t for t in tune_controller.get_trials() if t.status not in (Trial.TERMINATED, Trial.ERROR)]
        if any(t.trial_id not in self._scores for t in live):
            return
        sign = -1.0 if self._mode == "max" else 1.0
        order = {t.trial_id: i for i, t in enumerate(tune_controller.get_trials())}
        ranked = sorted(self._scores, key=lambda tid: (sign * self._scores[tid], order.get(tid, 0)))
        live_ids = {t.trial_id for t in live}
        self._kept = {tid for tid in [tid for tid in ranked if tid in live_ids][:self._k]}
        for trial in live:
            if trial.status == Trial.PAUSED and trial.trial_id not in self._kept and trial is not waiting:
                tune_controller.stop_trial(trial)
