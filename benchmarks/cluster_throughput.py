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
import heapq
import logging
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_study import most_at_once

EPOCHS, GRACE, ETA = 100, 10, 3


def _trial_curve(lr: float, epoch_seconds: float) -> tuple[float, list[float]]:
    """One trial's epoch length (±10 %, seeded by its lr) and its score at every epoch."""
    rng = random.Random(lr)
    epoch_s = epoch_seconds * (1 + 0.1 * (2 * rng.random() - 1))
    quality = 1 - abs(math.log10(lr) + 2.5) / 2.5  # best near lr = 10^-2.5
    return epoch_s, [100 * quality * (1 - math.exp(-epoch / 20)) + rng.gauss(0, 0.5)
                     for epoch in range(1, EPOCHS + 1)]


def sleep_trainable(config: dict[str, Any]) -> None:
    """Sleeps ``epoch_seconds`` (±10 %, seeded by the trial's lr) per epoch and reports a rising score."""
    from ray import tune

    epoch_s, scores = _trial_curve(float(config["lr"]), float(config["epoch_seconds"]))
    started = time.perf_counter()
    for epoch in range(1, int(config["epochs"]) + 1):
        time.sleep(epoch_s)
        score = scores[epoch - 1]
        tune.report({"epoch": epoch, "score": score, "val_top1": score,
                     "run_seconds": time.perf_counter() - started})


def ideal_utilisation(args: argparse.Namespace, at_once: bool, seeds: int = 20) -> float:
    """The same study on a perfect engine: no start-up, no driver or store time, a slot refilled the
    instant it frees (mean over ``seeds`` draws of the lr). Trials are asked round-robin over the
    tasks (at once) or each task alone after the other; Ray's ASHA rule per task. What is left below 1
    is the schedule's own ramp and tail: the ceiling for the engine's utilisation."""
    utils = []
    for seed in range(seeds):
        rng = random.Random(seed)
        if at_once:
            busy, span = _ideal_schedule(args, args.tasks, rng)
        else:
            parts = [_ideal_schedule(args, 1, rng) for _ in range(args.tasks)]
            busy, span = sum(b for b, _ in parts), sum(s for _, s in parts)
        utils.append(busy / (args.slots * span))
    return sum(utils) / len(utils)


def _ideal_schedule(args: argparse.Namespace, tasks: int, rng: random.Random) -> tuple[float, float]:
    """Busy slot-seconds and makespan of ``tasks`` tasks' trials on ``args.slots`` perfect slots."""
    rungs = [GRACE * ETA**k for k in range(int(math.log(EPOCHS / GRACE) / math.log(ETA) + 1))]
    recorded: list[dict[int, list[float]]] = [{m: [] for m in rungs} for _ in range(tasks)]
    asked = [0] * tasks
    turn = 0

    def ask(now: float) -> tuple[float, int, float, list[float]] | None:
        nonlocal turn
        active = [t for t in range(tasks) if asked[t] < args.trials]
        if not active:
            return None
        task = active[turn % len(active)]
        turn += 1
        asked[task] += 1
        epoch_s, scores = _trial_curve(10 ** rng.uniform(-4, -1), args.epoch_seconds)
        return now, task, epoch_s, scores

    busy, end = 0.0, 0.0
    events: list[tuple[float, int, int, tuple[float, int, float, list[float]]]] = []  # (time, id, epoch)
    count = 0

    def place(trial: tuple[float, int, float, list[float]] | None) -> None:
        nonlocal count
        if trial is not None:  # its first event: the first rung (or its last epoch)
            count += 1
            heapq.heappush(events, (trial[0] + rungs[0] * trial[2], count, rungs[0], trial))

    for _ in range(args.slots):
        place(ask(0.0))
    while events:
        now, ident, epoch, trial = heapq.heappop(events)
        start, task, epoch_s, scores = trial
        done = epoch >= EPOCHS
        if not done:  # Ray's rule: below the (1 - 1/eta) quantile of the rung so far stops it
            values = recorded[task][epoch]
            done = bool(values) and scores[epoch - 1] < float(np.nanpercentile(values, (1 - 1 / ETA) * 100))
            values.append(scores[epoch - 1])
        if done:
            busy, end = busy + now - start, max(end, now)
            place(ask(now))
        else:
            later = [m for m in rungs if m > epoch] + [EPOCHS]
            heapq.heappush(events, (start + later[0] * epoch_s, ident, later[0], trial))
    return busy, end


def study_doc(args: argparse.Namespace, storage: str) -> dict[str, Any]:
    return {
        "name": f"throughput{int(time.time())}",
        "storage": storage,
        "method": "genft",
        "model": {"name": "sleep"},
        "data": {"kind": "vtab1k", "tasks": [f"task{i}" for i in range(args.tasks)]},
        "space": "none",
        "params": {"lr": {"float": [1e-4, 1e-1], "log": True}},
        "fixed": {"epochs": EPOCHS, "epoch_seconds": args.epoch_seconds},
        "sampler": {"name": "random", "seed": 0},
        "scheduler": {"name": "asha", "grace_period": GRACE, "reduction_factor": ETA},
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


def _idle(spans: list[tuple[float, float]], slots: int) -> dict[str, float]:
    """Where idle slot time was, as fractions of slots x makespan: ``ramp`` (before every slot first
    held a trial), ``gaps`` (slots idle while trials were still to start: the engine's hand-over from
    one trial to the next) and ``tail`` (after the last trial started: the schedule's own end)."""
    first, last_start = min(s for s, _ in spans), max(s for s, _ in spans)
    total = slots * (max(e for _, e in spans) - first)
    idle = {"ramp": 0.0, "gaps": 0.0, "tail": 0.0}
    running, before, full = 0, first, False
    for at, step in sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans]):
        free = max(0, slots - running) * (at - before)
        idle["tail" if before >= last_start else "gaps" if full else "ramp"] += free
        running, before = running + step, at
        full = full or running >= slots
    return {key: value / total for key, value in idle.items()}


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
    if label == "at_once":
        idle = _idle(all_spans, slots)
    else:  # one experiment after another: each task's own ramp, hand-overs and tail
        parts = [(_idle(spans, slots), max(e for _, e in spans) - min(s for s, _ in spans))
                 for spans in (_spans(study) for study in studies.values())]
        idle = {key: sum(part[key] * span for part, span in parts) / makespan
                for key in ("ramp", "gaps", "tail")}
    print(f"# {label}: idle slot time: ramp {idle['ramp']:.3f}, gaps {idle['gaps']:.3f} (engine hand-over), "
          f"tail {idle['tail']:.3f} (after the last trial started), between tasks "
          f"{max(0.0, 1 - util - sum(idle.values())):.3f}")
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
    ideal_all, ideal_seq = ideal_utilisation(args, True), ideal_utilisation(args, False)
    print(f"# a perfect engine (no start-up, driver or store time; the same ASHA rule, mean of 20 lr draws): "
          f"utilisation {ideal_all:.3f} at once, {ideal_seq:.3f} one task after another")
    print(f"RESULT util_at_once={util_all:.3f} util_sequential={util_seq:.3f} "
          f"makespan_ratio={span_all / span_seq:.3f} util_at_once_ran={ran_all:.3f} "
          f"util_sequential_ran={ran_seq:.3f} util_at_once_ideal={ideal_all:.3f} "
          f"util_sequential_ideal={ideal_seq:.3f} slots={args.slots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
