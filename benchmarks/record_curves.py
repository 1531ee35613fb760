"""Record GenFT learning curves on the built-in tasks for the replay benchmark (``search_replay.py``).

Configurations of the paper's search space (``space: paper``) come in three groups, drawn with the
project's own samplers: uniformly at random, around the task's paper setting (Appendix B of arXiv
2506.11042), and around a deliberately wrong setting (:data:`WRONG`), so that the replayed searches with
either prior find recorded neighbours. Each configuration is trained for every epoch by the real engine
(``run_study``: the vision trainable, Ray Tune, an Optuna study in SQLite; the configurations are its
``warm_start`` rows), and every epoch's ``val_top1`` is read back from the store. The table is written
as gzip-compressed JSON (``benchmarks/data/curves_*.json.gz``).

    python benchmarks/record_curves.py                         # the small CPU table of the repository
    python benchmarks/record_curves.py --configs 300 --epochs 20 --train-limit 0 --gpu 0.25 \\
        --out benchmarks/data/curves_gpu.json.gz               # the table to regenerate on a GPU
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "data" / "curves_cpu.json.gz"
#: a setting far from the paper's on every axis (lowest lr, tiny scaling and W0 share, narrow generator)
WRONG: dict[str, Any] = {
    "shared_dim": 8, "specific_dim": 0, "sigma1": "tanh", "sigma2": "tanh", "w0_ratio": 0.02,
    "scaling": 0.002, "dropout": 0.2, "bias": True, "lr": 1.0e-4, "weight_decay": 2.0e-3,
    "label_smoothing": 0.2,
}


def study_doc(task: str, rows: list[dict[str, Any]], args: argparse.Namespace, storage: str
              ) -> dict[str, Any]:
    return {
        "name": args.name,
        "storage": storage,
        "method": "genft",
        "model": {"name": "builtin", "checkpoint": "builtin"},
        "data": {"kind": "vtab1k", "root": "builtin", "tasks": [task]},
        "protocol": "honest",
        "space": "paper",
        "fixed": {"epochs": args.epochs, "batch_size": 32, "warmup_epochs": 0,
                  "train_limit": args.train_limit},
        "sampler": {"name": "random", "seed": 0},
        "scheduler": {"name": "fifo"},
        "budget": {"n_trials": len(rows)},
        "resources": {"cpu": 1, "gpu": args.gpu},
        "warm_start": rows,
        "objective": {"metric": "val_top1", "direction": "maximize"},
    }


def draw_configs(task: str, n: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` configurations: a third random, a third around the paper setting, a third around WRONG."""
    import optuna

    from genft_search.config import parse_study_config
    from genft_search.paper import paper_setting
    from genft_search.samplers import PriorSampler
    from genft_search.space import build_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = build_space(parse_study_config(study_doc(task, [{}], argparse.Namespace(
        epochs=1, train_limit=0, gpu=0, name="draw"), "sqlite://"), "record"))
    paper = {k: v for k, v in (paper_setting("vtab1k", task) or {}).items() if k in space}
    samplers = {"random": optuna.samplers.RandomSampler(seed=seed),
                "paper": PriorSampler(paper, optuna.samplers.RandomSampler(seed=seed), confidence="low",
                                      seed=seed),
                "wrong": PriorSampler(WRONG, optuna.samplers.RandomSampler(seed=seed), confidence="low",
                                      seed=seed + 1)}
    out: list[tuple[str, dict[str, Any]]] = [("paper", paper), ("wrong", dict(WRONG))]
    groups = list(samplers)
    studies = {g: optuna.create_study(direction="maximize", sampler=s) for g, s in samplers.items()}
    i = 0
    while len(out) < n:
        group = groups[i % 3]
        out.append((group, space.sample(studies[group].ask())))
        i += 1
    return out[:n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="dsprites_loc", help="built-in tasks, comma-separated")
    ap.add_argument("--configs", type=int, default=30, help="configurations per task")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--train-limit", type=int, default=320, help="training images (0: all 800)")
    ap.add_argument("--cpus", type=int, default=2, help="trials at once (one CPU each)")
    ap.add_argument("--gpu", type=float, default=0.0, help="GPU share per trial")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--storage", help="study store URL (default: SQLite in a new temporary folder)")
    ap.add_argument("--name", default="curves", help="the recording study's name")
    args = ap.parse_args(argv)

    import ray

    from genft_search.config import load_study_config
    from genft_search.tune import run_study

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    work = Path(tempfile.mkdtemp(prefix="genft-curves-"))
    storage = args.storage or f"sqlite:///{work / 'curves.db'}"
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    table: dict[str, Any] = {"meta": {"epochs": args.epochs, "train_limit": args.train_limit,
                                      "gpu": args.gpu, "seed": args.seed, "metric": "val_top1",
                                      "model": "builtin (MNIST-pretrained ViT, 4 blocks, 32x32)",
                                      "recorded": time.strftime("%Y-%m-%d"), "wrong": WRONG},
                             "tasks": {}}
    started = time.time()
    try:
        for task in [t for t in args.tasks.split(",") if t]:
            drawn = draw_configs(task, args.configs, args.seed)
            path = work / f"{task}.yaml"
            path.write_text(yaml.safe_dump(study_doc(task, [c for _, c in drawn], args, storage)))
            study = run_study(load_study_config(path), progress=False)[task]
            rows = []
            for trial in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
                curve = [trial.intermediate_values[e] for e in sorted(trial.intermediate_values)]
                if trial.state.name != "COMPLETE" or len(curve) != args.epochs:
                    print(f"# {task}: trial {trial.number} {trial.state.name}, skipped", file=sys.stderr)
                    continue
                # by parameters, not number (a retried trial is renumbered); inactive ones do not count
                group = next((g for g, c in drawn if {k: c.get(k) for k in trial.params} == trial.params),
                             "random")
                rows.append({"params": trial.params, "group": group,
                             "curve": [round(v, 4) for v in curve]})
            table["tasks"][task] = {"configs": rows}
            best = max(r["curve"][-1] for r in rows)
            print(f"{task}: {len(rows)} configurations x {args.epochs} epochs, best final val_top1 "
                  f"{best:.3f}")
    finally:
        ray.shutdown()
    table["meta"]["seconds"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out, "wt", encoding="utf-8") as fh:
        json.dump(table, fh, separators=(",", ":"))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) in {table['meta']['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
