"""A small study with one trial in each state the exports and the store must handle."""

from __future__ import annotations

import optuna

from genft_search import store


def make_mixed_study(url: str, name: str = "exp/task_a") -> optuna.Study:
    """Trials complete, pruned, failed (with its reason), complete; ``lr`` searched, ``act_fn`` a choice
    whose values need LaTeX escaping."""
    study = optuna.create_study(study_name=name, storage=store.open_storage(url), direction="maximize")
    for i, state in enumerate(["complete", "pruned", "fail", "complete"]):
        study.enqueue_trial({"lr": 0.125 * (i + 1), "act_fn": ["a_b", "50%", "x&y#z", "a_b"][i]})
        trial = study.ask()
        trial.suggest_float("lr", 0.0, 1.0)
        trial.suggest_categorical("act_fn", ["a_b", "50%", "x&y#z"])
        trial.set_user_attr("budget", 4 if state == "complete" else 1)
        if state == "complete":
            study.tell(trial, 0.5 + i / 10)
        elif state == "pruned":
            trial.report(0.1, 1)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            trial.set_user_attr(store.ATTR_FAIL_REASON, "FloatingPointError: nan")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return study
