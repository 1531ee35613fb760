"""Real ablation studies in SQLite, made by ``study.optimize`` on a small real objective.

The objective trains a tiny two-layer network (numpy, full-batch gradient descent) whose hidden width
and structure follow the variant's GenFT dims (resolved by the method library), reports its accuracy
every epoch and returns the last one; the studies carry the user attrs the engine and the ablation
runner store (``config``, ``task``, ``objective``, ``ablation``; per trial ``metrics``, ``budget``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna

from genft_search.method import GenFTConfig, genft_num_parameters

D, LAYERS, EPOCHS = 16, 2, 4
BASE = {"shared_dim": 6, "specific_dim": 0, "lr": 0.5}


def _data(task: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(sum(map(ord, task)))
    x = rng.normal(size=(240, D))
    w = rng.normal(size=D)
    y = (np.tanh(x @ w) + 0.3 * rng.normal(size=240) > 0).astype(float)
    return x, y


def train_variant(trial: optuna.Trial, task: str, kind: str, variants: list[str], seeds: list[int]) -> float:
    """A real (tiny) training whose capacity follows the variant; accuracy in % per epoch."""
    variant = trial.suggest_categorical("ablation", variants)
    seed = trial.suggest_categorical("seed", seeds)
    family = "text" if kind == "glue" else "vit"
    cfg = GenFTConfig.from_mapping({**BASE, "ablation": variant}).resolve(family)
    width = cfg.shared_dim + cfg.specific_dim
    depth = 1 if variant in ("without_row", "without_column") else 2
    rng = np.random.default_rng(seed)
    x, y = _data(task)
    hidden = x
    for _ in range(depth):
        hidden = np.tanh(hidden @ rng.normal(size=(hidden.shape[1], width)) / np.sqrt(hidden.shape[1]))
    w = np.zeros(width)
    accuracy = 0.0
    for epoch in range(1, EPOCHS + 1):
        p = 1 / (1 + np.exp(-(hidden @ w)))
        w -= BASE["lr"] * hidden.T @ (p - y) / len(y)
        accuracy = float(100 * np.mean(((hidden @ w) > 0) == (y > 0.5)))
        trial.report(accuracy, epoch)
    trial.set_user_attr("budget", EPOCHS)
    trial.set_user_attr(
        "metrics",
        {
            "val_top1": accuracy,
            "epoch": EPOCHS,
            "trainable_params": genft_num_parameters(cfg, family=family, d=D, num_layers=LAYERS),
        },
    )
    return accuracy


def make_ablation_studies(
    url: str,
    name: str,
    tasks: list[str],
    *,
    kind: str = "vtab1k",
    root: str = "builtin",
    variants: tuple[str, ...] = (
        "full",
        "without_shared",
        "without_specific",
        "without_row",
        "without_column",
    ),
    seeds: tuple[int, ...] = (1, 2, 3),
) -> list[optuna.Study]:
    """One grid study per task over variant × seed, as ``genft-search ablate`` leaves them."""
    studies = []
    for task in tasks:
        grid = {"ablation": list(variants), "seed": list(seeds)}
        study = optuna.create_study(
            study_name=f"{name}/{task}",
            storage=url,
            direction="maximize",
            sampler=optuna.samplers.GridSampler(grid, seed=0),
        )
        config: dict[str, Any] = {
            "method": "genft",
            "model": {"name": "builtin"},
            "data": {"kind": kind, "root": root, "task": task},
            "protocol": "honest",
            "seed": 42,
            **BASE,
            "epochs": EPOCHS,
        }
        attrs = {
            "config": config,
            "task": task,
            "method": "genft",
            "protocol": "honest",
            "study_file": name,
            "objective": [{"metric": "val_top1", "direction": "maximize", "scope": "last"}],
            "ablation": {
                "base": "fixed",
                "variants": list(variants),
                "seeds": list(seeds),
                "from_study": None,
                "setting": BASE,
            },
        }
        for key, value in attrs.items():
            study.set_user_attr(key, value)
        study.optimize(
            lambda t, task=task, grid=grid: train_variant(t, task, kind, grid["ablation"], grid["seed"]),
            n_trials=len(variants) * len(seeds),
        )
        studies.append(optuna.load_study(study_name=study.study_name, storage=url))
    return studies
