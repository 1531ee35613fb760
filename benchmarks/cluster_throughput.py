"""How busy a simulated cluster stays over a study file: its tasks one after another, then all at once.

Ray gets many logical CPUs on this machine (``--slots``, default 32; each trial asks for one), the
trainable sleeps instead of training, and the study file is shaped like ``studies/vtab_structured.yaml``:
``--tasks`` tasks (8) × ``--trials`` trials (32), ASHA with grace period 10 and η = 3, 100 epochs,
each epoch ``--epoch-seconds`` long (0.2 s; ±10 % per trial, seeded, with a score that rises with the
epoch and depends on the sampled ``lr``, so ASHA has something to rank). It runs the real engine
(``run_study``: Ray Tune, Optuna in SQLite) twice, with ``tasks_at_once=1`` (one task after another)
and with every task in one experiment (the default), and reads every trial's start and end from the
store. It prints, for each run:

- slot utilisation: busy slot-seconds (the sum of the trials' durations, from ask to tell in the store)
  / (slots × makespan), and the same with only the time the trainables themselves ran (their
  ``run_seconds``: without the driver's and the store's overhead per result);
- makespan: first trial start to last trial end, over all tasks;
- per task: its makespan and its most trials at once;

then ``RESULT util_at_once=… util_sequential=… makespan_ratio=…`` (at once over sequential) and the
same utilisations by ``run_seconds``.

    python benchmarks/cluster_throughput.py                              # 32 slots, 8 x 32 trials
    python benchmarks/cluster_throughput.py --slots 8 --tasks 2 --trials 12 --epoch-seconds 0.1
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_study import most_at_once


def sleep_trainable(config: dict[str, Any]) -> None:
    """Sleeps ``epoch_seconds`` (±10 %, seeded by the trial's lr) per epoch and reports a rising score."""
    from ray import tune

    lr = float(config["lr"])
    rng = random.Random(lr)
    epoch_s = float(config["epoch_seconds"]) * (1 + 0.1 * (2 * rng.random() - 1))
    quality = 1 - abs(math.log10(lr) + 2.5) / 2.5  # best near lr = 10^-2.5
    started = time.perf_counter()
    for epoch in range(1, int(config["epochs"]) + 1):
        time.sleep(epoch_s)
        score = 100 * quality * (1 - math.exp(-epoch / 20)) + rng.gauss(0, 0.5)
        tune.report({"epoch": epoch, "score": score, "val_top1": score,
                     "run_seconds": time.perf_counter() - started})


def study_doc(args: argparse.Namespace, storage: str) -> dict[str, Any]:
    return {
        "name": f"throughput{int(time.time())}",
        "storage": storage,
        "method": "genft",
        "model": {"name": "sleep"},
        "data": {"kind": "vtab1k", "tasks": [f"task{i}" for i in range(args.tasks)]},
        "space": "none",
        "params": {"lr": {"float": [1e-4, 1e-1], "log": True}},
        "fixed": {"epochs": 100, "epoch_seconds": args.epoch_seconds},
        "sampler": {"name": "random", "seed": 0},
        "scheduler": {"name": "asha", "grace_period": 10, "reduction_factor": 3},
        "budget": {"n_trials": args.trials},
        "resources": {"cpu": 1},
        "objective": {"metric": "val_top1", "direction": "maximize"},
    }


def _run_seconds(study: Any) -> float:
    """What the trainables themselves ran (their last report), without Ray's and the store's overhead."""
    from genft_search import store

    return sum(float((t.user_attrs.get(store.ATTR_METRICS) or {}).get("run_seconds", 0))
               for t in study.get_trials(deepcopy=False))


def _spans(study: Any) -> list[tuple[float, float]]:
    return [(t.datetime_start.timestamp(), t.datetime_complete.timestamp())
            for t in study.get_trials(deepcopy=False) if t.datetime_start and t.datetime_complete]


def _measure(label: str, studies: dict[str, Any], slots: int) -> tuple[float, float, float]:
    """Print one mode's per-task table; returns (utilisation by spans, by run_seconds, makespan)."""
    print(f"## {label}")
    print(f"{'task':<8} {'trials':>6} {'makespan s':>10} {'most at once':>12} {'busy slot-s':>11}")
    all_spans: list[tuple[float, float]] = []
    ran = sum(_run_seconds(study) for study in studies.values())
    for task, study in studies.items():
        spans = _spans(study)
        all_spans += spans
        span = max(e for _, e in spans) - min(s for s, _ in spans)
        print(f"{task:<8} {len(spans):>6} {span:>10.1f} {most_at_once(spans):>12} "
              f"{sum(e - s for s, e in spans):>11.1f}")
    makespan = max(e for _, e in all_spans) - min(s for s, _ in all_spans)
    busy = sum(e - s for s, e in all_spans)
    util, util_ran = busy / (slots * makespan), ran / (slots * makespan)
    print(f"# {label}: makespan {makespan:.1f} s, most at once {most_at_once(all_spans)}, busy {busy:.1f} "
          f"slot-s, utilisation {util:.3f}; trainables ran {ran:.1f} slot-s, utilisation {util_ran:.3f}")
    return util, util_ran, makespan


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slots", type=int, default=32, help="logical CPUs given to Ray (one trial each)")
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--trials", type=int, default=32, help="trials per task")
    ap.add_argument("--epoch-seconds", type=float, default=0.2, help="one of the 100 epochs, scaled")
    ap.add_argument("--storage", help="study store URL (default: SQLite in a temporary folder)")
    args = ap.parse_args(argv)

    import ray

    from genft_search.config import load_study_config
    from genft_search.tune import run_study

    work = Path(tempfile.mkdtemp(prefix="genft-throughput-"))
    storage = args.storage or f"sqlite:///{work / 'studies.db'}"
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # the logical slots; run_study reuses a Ray that is already initialised
    ray.init(address="local", num_cpus=args.slots, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    print(f"# {args.tasks} tasks x {args.trials} trials, {args.slots} slots, ASHA grace 10 eta 3, 100 epochs "
          f"of {args.epoch_seconds:g} s; the same file run one task after another, then all at once")
    figures = {}
    try:
        for mode, at_once in (("sequential", 1), ("at_once", None)):
            doc = study_doc(args, storage)
            doc["name"] = f"{doc['name']}{mode}"
            path = work / f"{mode}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            studies = run_study(load_study_config(path), trainable=sleep_trainable, progress=False,
                                tasks_at_once=at_once)
            figures[mode] = _measure(mode, studies, args.slots)
    finally:
        ray.shutdown()
    (util_seq, ran_seq, span_seq), (util_all, ran_all, span_all) = figures["sequential"], figures["at_once"]
    print(f"RESULT util_at_once={util_all:.3f} util_sequential={util_seq:.3f} "
          f"makespan_ratio={span_all / span_seq:.3f} util_at_once_ran={ran_all:.3f} "
          f"util_sequential_ran={ran_seq:.3f} slots={args.slots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
