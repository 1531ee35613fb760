"""A real search study in SQLite: ``study.optimize`` on a small real training, with pruning.

The objective trains a random-feature classifier (numpy, gradient descent) whose width, activation,
learning rate and a conditional parameter come from the trial; every epoch is reported, Optuna's
median pruner stops poor trials (PRUNED, curve kept), and the study carries the engine's user attrs.
"""

from __future__ import annotations

import numpy as np
import optuna

EPOCHS = 6


def _train(trial: optuna.Trial) -> float:
    width = trial.suggest_int("shared_dim", 8, 64, step=8)
    b = trial.suggest_int("specific_dim", 0, 4)
    if b > 0:  # conditional, like init_a in the paper's space
        trial.suggest_categorical("init_a", ["zeros", "normal"])
    act = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0), "identity": lambda v: v}
    sigma = trial.suggest_categorical("sigma1", list(act))
    lr = trial.suggest_float("lr", 1e-3, 3.0, log=True)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 12))
    y = (np.sin(x[:, 0] * 2) + x[:, 1] ** 2 - 1 > 0).astype(float)
    feats = act[sigma](x @ rng.normal(size=(12, width + b)) / np.sqrt(12))
    w = np.zeros(width + b)
    acc = 0.0
    for epoch in range(1, EPOCHS + 1):
        for _ in range(5):
            p = 1 / (1 + np.exp(-np.clip(feats @ w, -30, 30)))
            w -= lr * feats.T @ (p - y) / len(y)
        acc = float(100 * np.mean((feats @ w > 0) == (y > 0.5)))
        trial.report(acc, epoch)
        if trial.should_prune():
            trial.set_user_attr("budget", epoch)
            raise optuna.TrialPruned()
    trial.set_user_attr("budget", EPOCHS)
    trial.set_user_attr("metrics", {"val_top1": acc, "trainable_params": 4 * width * 12 + 8 * b * 12})
    return acc


def make_search_study(url: str, name: str = "search", task: str = "dtd", n_trials: int = 24,
                      seed: int = 3) -> optuna.Study:
    """A finished search study named ``<name>/<task>`` as ``genft-search run`` leaves it."""
    study = optuna.create_study(
        study_name=f"{name}/{task}",
        storage=url,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=6),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1),
    )
    config = {
        "method": "genft",
        "model": {"name": "vit_base_patch16_224"},
        "data": {"kind": "vtab1k", "root": "/data/vtab-1k", "task": task},
        "protocol": "honest",
        "seed": 42,
        "epochs": EPOCHS,
        "batch_size": 64,
    }
    attrs = {
        "config": config,
        "method": "genft",
        "task": task,
        "protocol": "honest",
        "study_file": name,
        "objective": [{"metric": "val_top1", "direction": "maximize", "scope": "last"}],
        "n_trials": n_trials,
    }
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(_train, n_trials=n_trials)
    return optuna.load_study(study_name=study.study_name, storage=url)
