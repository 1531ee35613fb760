"""Orchestration overhead: the same N short trials through genft-search vs a bare Optuna loop.

Both sides train the same tiny real torch model (an MLP on a fixed synthetic problem, a few epochs,
one report per epoch) with the same TPE sampler on an SQLite study store. genft-search runs them
through Ray Tune with the Optuna ask/tell searcher, one trial at a time (``resources.cpu`` = all
cores) so the difference is orchestration, not parallelism. Ray's start-up is timed apart.

    python benchmarks/orchestration.py [--n-trials 20] [--epochs 5]

The last line is ``RESULT overhead_ratio=<genft / bare> per_trial_overhead_s=<(genft - bare) / N>``,
both measured after start-up (Ray running; the first trial's worker start is included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import optuna
import torch
from torch import nn

_PROBLEM: dict[str, torch.Tensor] = {}


def _fit(config: dict[str, Any], report) -> float:
    """Train the tiny MLP; ``report(epoch, accuracy)`` after every epoch; returns the last accuracy."""
    torch.set_num_threads(1)
    if not _PROBLEM:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2048, 16, generator=g)
        y = (x @ torch.randn(16, 4, generator=g)).argmax(1)
        _PROBLEM.update(xtr=x[:1536], ytr=y[:1536], xva=x[1536:], yva=y[1536:])
    p = _PROBLEM
    torch.manual_seed(int(config.get("seed", 0)))
    width = int(config["width"])
    model = nn.Sequential(nn.Linear(16, width), nn.ReLU(), nn.Linear(width, 4))
    opt = torch.optim.SGD(model.parameters(), lr=float(config["lr"]), momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    acc = 0.0
    for epoch in range(1, int(config["epochs"]) + 1):
        for start in range(0, 1536, 128):
            opt.zero_grad()
            loss = loss_fn(model(p["xtr"][start:start + 128]), p["ytr"][start:start + 128])
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = float((model(p["xva"]).argmax(1) == p["yva"]).float().mean())
        report(epoch, acc)
    return acc


def train(config: dict[str, Any]) -> None:
    """The Ray Tune function trainable (the trainable contract: ``epoch`` and the metric per epoch)."""
    import ray.tune

    _fit(config, lambda epoch, acc: ray.tune.report({"epoch": epoch, "score": acc, "val_top1": acc}))


def _study_doc(n_trials: int, epochs: int) -> dict[str, Any]:
    return {
        "name": "orchestration",
        "model": {"name": "mlp"},
        "data": {"kind": "vtab1k", "tasks": ["synthetic"]},
        "space": "none",
        "params": {"lr": {"float": [0.01, 0.5], "log": True}, "width": {"choice": [16, 32, 64]}},
        "fixed": {"epochs": epochs},
        "sampler": {"name": "tpe", "seed": 0},
        "scheduler": {"name": "fifo"},
        "budget": {"n_trials": n_trials},
        "resources": {"cpu": float(os.cpu_count() or 1)},
        "objective": {"metric": "val_top1", "direction": "maximize"},
    }


def run_bare(n_trials: int, epochs: int, url: str) -> float:
    """A plain ``study.optimize`` loop in this process, same model, sampler and kind of store."""
    study = optuna.create_study(study_name="bare", storage=url, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        config = {"lr": trial.suggest_float("lr", 0.01, 0.5, log=True),
                  "width": trial.suggest_categorical("width", [16, 32, 64]), "epochs": epochs}
        return _fit(config, lambda epoch, acc: trial.report(acc, epoch))

    start = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    return time.perf_counter() - start


def run_genft(n_trials: int, epochs: int, url: str) -> tuple[float, float]:
    """(Ray start-up seconds, seconds for the study through ``genft_search.tune.run_study``)."""
    import ray

    from genft_search.config import parse_study_config
    from genft_search.tune import ensure_ray, run_study

    start = time.perf_counter()
    ensure_ray(None)
    startup = time.perf_counter() - start
    config = parse_study_config(_study_doc(n_trials, epochs), "orchestration.yaml")
    start = time.perf_counter()
    studies = run_study(config, storage=url, trainable=train, progress=False)
    elapsed = time.perf_counter() - start
    ray.shutdown()
    study = studies["synthetic"]
    done = [t for t in study.trials if t.state.is_finished()]
    if len(done) != n_trials:
        raise SystemExit(f"genft-search finished {len(done)} trials, expected {n_trials}")
    return startup, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="genft-bench-") as tmp:
        bare = run_bare(args.n_trials, args.epochs, f"sqlite:///{tmp}/bare.db")
        startup, genft = run_genft(args.n_trials, args.epochs, f"sqlite:///{tmp}/genft.db")
    ratio = genft / bare
    per_trial = (genft - bare) / args.n_trials
    numbers = {"n_trials": args.n_trials, "epochs": args.epochs, "cpus": os.cpu_count(),
               "bare_s": round(bare, 3), "genft_s": round(genft, 3), "ray_startup_s": round(startup, 3),
               "overhead_ratio": round(ratio, 3), "per_trial_overhead_s": round(per_trial, 3)}
    print(f"bare Optuna loop: {bare:.2f} s for {args.n_trials} trials ({bare / args.n_trials:.3f} s/trial)")
    print(f"genft-search:     {genft:.2f} s after Ray start-up ({startup:.2f} s)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(numbers, indent=2) + "\n")
    print(f"RESULT overhead_ratio={ratio:.3f} per_trial_overhead_s={per_trial:.3f}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
