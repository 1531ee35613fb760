"""The honest final evaluation over seeds: the setting chosen on validation is retrained on train+val with
each of N seeds and tested once per seed; every seed's metrics are stored in the study's
``test_evaluations`` (what ``compare`` reads as mean ± std over seeds).

Seeds are 1..N for every study, so two methods' evaluations pair seed by seed; a seed already stored for
the chosen trial is not trained again (``--seeds 5`` after ``--seeds 2`` trains three more).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from genft_search import store
from genft_search.errors import UserError

__all__ = ["evaluate_seeds"]

Evaluate = Callable[[Mapping[str, Any]], dict[str, Any]]


def _say(text: str) -> None:
    # a retraining takes minutes on a CPU: one line per seed started and finished shows it is moving
    print(f"genft-search: {text}", file=sys.stderr, flush=True)


def evaluate_seeds(study: optuna.Study, trial: FrozenTrial, seeds: int,
                   evaluate: Evaluate | None = None) -> list[dict[str, Any]]:
    """Retrain ``trial``'s setting with seeds 1..``seeds`` and test each once; store and return the entries.

    Args:
        study: the study the trial belongs to (its base config and ``test_evaluations`` attr).
        trial: the chosen trial (selected on validation).
        seeds: how many seeds (1..N).
        evaluate: retrains a trial config and returns its test metrics (default: the data kind's
            trainable, ``trainables.registry.evaluate_test``).

    Returns:
        The chosen trial's entries ``{"seed", "trial", "metrics"}``, one per seed, in seed order.

    Raises:
        UserError: ``seeds`` below 1.
    """
    if seeds < 1:
        raise UserError(f"--seeds: {seeds} is not a number of seeds; expected an integer >= 1")
    if evaluate is None:
        from trainables import registry

        evaluate = registry.evaluate_test
    config = store.trial_config(study, trial)
    stored = [dict(e) for e in store.StudyRecord.read(study).test_evaluations if isinstance(e, Mapping)]
    others = [e for e in stored if e.get("trial") != trial.number]
    done = {int(e["seed"]): e for e in stored if e.get("trial") == trial.number and "seed" in e}

    def save() -> None:
        # the chosen trial's entries last: compare reads the trial of the last entry as the chosen one
        record = store.StudyRecord(test_evaluations=others + [done[s] for s in sorted(done)])
        record.write(study, "test_evaluations")

    todo = [seed for seed in range(1, seeds + 1) if seed not in done]
    if len(todo) < seeds:
        kept = sorted(set(range(1, seeds + 1)) - set(todo))
        _say(f"{study.study_name} trial #{trial.number}: seeds {kept} already stored, not retrained")
    for count, seed in enumerate(todo, 1):
        label = f"{study.study_name} trial #{trial.number} seed {seed} ({count}/{len(todo)} to train)"
        _say(f"{label}: retraining on train+val, then testing once")
        started = time.monotonic()
        metrics = evaluate({**config, "seed": seed})
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k.startswith("test_")
                          and isinstance(v, (int, float)))
        _say(f"{label}: {shown or 'done'} in {time.monotonic() - started:.0f} s")
        done[seed] = {"seed": seed, "trial": trial.number, "metrics": metrics}
        save()  # after each seed: an interrupted evaluation keeps the seeds it finished
    save()
    return [done[s] for s in range(1, seeds + 1)]
