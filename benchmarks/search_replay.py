"""Search policies measured on recorded GenFT learning curves, replayed through genft-search's own engine.

A table of curves (``record_curves.py``: configurations of the paper space trained for every epoch on a
built-in task) stands in for training: the replay trainable maps the configuration it is given to the
nearest recorded one (in each parameter's own scale, log for log parameters; a different choice counts
as a whole range) and reports that configuration's curve, one epoch per ``--epoch-seconds``, through
``ray.tune.report`` like any trainable. Everything else is the product: ``run_study``, Ray Tune, the
Optuna samplers and schedulers, the SQL store. Policies:

- ``random``: random sampler, every trial to the end (FIFO);
- ``tpe``: TPE, every trial to the end;
- ``tpe_asha``: TPE with ASHA (grace period 1 epoch, reduction factor 3);
- ``prior_asha``: the prior sampler (base TPE, confidence medium) centred on the paper's setting for the
  task, ``warm_start: paper``, with ASHA;
- ``bad_prior_asha``: the same centred on a deliberately wrong setting (the table's ``wrong`` row, also
  enqueued as the first trial);
- ``topk``: random configurations, ``one_epoch_topk`` keeping ``k``.

Per policy and seed (``--seeds``, 4 trials at once on 4 logical Ray CPUs): the simulated epochs spent
until a trial trained to the last epoch reaches the target (the best final score of ``--target-trials``
random configurations trained to the end, drawn with the seed + 1000), counted over every epoch any trial
ran in the order they were reported; and the regret (best final score in the table minus the best final
score found) after fixed numbers of epochs. Prints a table, then

    RESULT prior_asha_over_random=… bad_prior_over_asha=… asha_over_random=… topk_over_random=…

the ratios of the median epochs to target (``inf`` when a policy's median run never reached it).

    python benchmarks/search_replay.py            # 10 seeds, 100 trials per study
    python benchmarks/search_replay.py --quick    # 1 seed, 10 trials: the CI check

``--quick`` takes as its target the best final score of its own random study (10 trials), so the
baseline always reaches it and the ratios over random are numbers (``inf`` for a policy that never
does); the full run's target is the issue's, a simulated 100-trial random search with another seed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TABLE = ROOT / "benchmarks" / "data" / "curves_cpu.json.gz"
POLICIES = ("random", "tpe", "tpe_asha", "prior_asha", "bad_prior_asha", "topk")
WORKERS = 4
TARGET_SEED_OFFSET = 1000


@cache
def load_table(path: str) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        table: dict[str, Any] = json.load(fh)
    return table


@cache
def paper_space() -> Any:
    """The search space the curves were recorded in (``space: paper``)."""
    from genft_search.config import parse_study_config
    from genft_search.space import build_space

    doc = {"name": "replay", "model": {"name": "replay"}, "data": {"kind": "vtab1k", "tasks": ["t"]},
           "space": "paper"}
    return build_space(parse_study_config(doc, "replay"))


def distance(a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
    """Squared distance of two configurations, each parameter scaled to its range (log if log)."""
    from optuna.distributions import CategoricalDistribution

    total = 0.0
    for name, param in paper_space().params.items():
        x, y = a.get(name), b.get(name)
        if x is None or y is None:
            total += 0.0 if x is None and y is None else 1.0
            continue
        dist = param.distribution
        if isinstance(dist, CategoricalDistribution):
            total += 0.0 if (type(x) is type(y) and x == y) else 1.0
            continue
        f = math.log if dist.log else float
        span = f(dist.high) - f(dist.low) or 1.0
        total += ((f(float(x)) - f(float(y))) / span) ** 2
    return total


def nearest(params: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> int:
    """Index of the recorded configuration closest to ``params`` (the first of equals)."""
    best, index = math.inf, 0
    for i, row in enumerate(rows):
        d = distance(params, row["params"])
        if d < best:
            best, index = d, i
    return index


def replay_trainable(config: dict[str, Any]) -> None:
    """Reports the recorded curve of the configuration nearest to ``config``, one epoch per
    ``epoch_seconds``; appends ``time epoch value epochs`` per report to ``replay_log``."""
    import ray.tune

    rows = load_table(config["replay_table"])["tasks"][config["replay_task"]]["configs"]
    curve = rows[nearest(config, rows)]["curve"]
    start = 0
    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            start = int((Path(folder) / "epoch").read_text())
    for epoch in range(start + 1, len(curve) + 1):
        time.sleep(float(config["epoch_seconds"]))
        value = float(curve[epoch - 1])
        with open(config["replay_log"], "a", encoding="utf-8") as log:
            log.write(f"{time.time():.6f} {epoch} {value} {len(curve)}\n")
        metrics = {"epoch": epoch, "score": value, "val_top1": value}
        if config.get("replay_checkpoint"):
            with tempfile.TemporaryDirectory() as folder:
                (Path(folder) / "epoch").write_text(str(epoch))
                ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(folder))
        else:
            ray.tune.report(metrics)


def policy_doc(policy: str, seed: int, args: argparse.Namespace, table: dict[str, Any], log: Path,
               storage: str) -> dict[str, Any]:
    epochs = int(table["meta"]["epochs"])
    asha = {"name": "asha", "grace_period": 1, "reduction_factor": 3}
    sampler: dict[str, Any] = {"name": "random", "seed": seed}
    scheduler: dict[str, Any] = {"name": "fifo"}
    warm: Any = None
    if policy == "tpe":
        sampler = {"name": "tpe", "seed": seed}
    elif policy == "tpe_asha":
        sampler, scheduler = {"name": "tpe", "seed": seed}, asha
    elif policy in ("prior_asha", "bad_prior_asha"):
        sampler, scheduler = {"name": "prior", "base": "tpe", "confidence": "medium", "seed": seed}, asha
        warm = "paper" if policy == "prior_asha" else [dict(table["meta"]["wrong"])]
    elif policy == "topk":
        scheduler = {"name": "one_epoch_topk", "k": args.k}
    return {
        "name": f"{policy}-s{seed}",
        "storage": storage,
        "model": {"name": "replay"},
        "data": {"kind": "vtab1k", "tasks": [args.task]},
        "space": "paper",
        "fixed": {"epochs": epochs, "epoch_seconds": args.epoch_seconds, "replay_table": str(args.table),
                  "replay_task": args.task, "replay_log": str(log), "replay_checkpoint": policy == "topk"},
        "sampler": sampler,
        "scheduler": scheduler,
        "budget": {"n_trials": args.trials},
        "resources": {"cpu": 1},
        "objective": {"metric": "val_top1", "direction": "maximize"},
        **({"warm_start": warm} if warm is not None else {}),
    }


def target(rows: Sequence[Mapping[str, Any]], seed: int, n: int) -> float:
    """The best final score of ``n`` random configurations trained to the end (the random sampler's
    draws with ``seed``, mapped to the table as the replay trainable maps them)."""
    import optuna

    # another seed than the random policy's own study, whose first draws would otherwise be the same
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=seed + TARGET_SEED_OFFSET))
    space = paper_space()
    return max(rows[nearest(space.sample(study.ask()), rows)]["curve"][-1] for _ in range(n))


def read_log(path: Path) -> list[tuple[int, float, int]]:
    """(epoch, value, epochs) of every report, in the order they were made."""
    events = []
    for line in path.read_text().splitlines():
        t, epoch, value, total = line.split()
        events.append((float(t), int(epoch), float(value), int(total)))
    return [(e, v, n) for _, e, v, n in sorted(events)]


def measure(events: list[tuple[int, float, int]], goal: float, budgets: Sequence[int], best: float
            ) -> tuple[int | None, list[float]]:
    """Epochs until a finished trial reaches ``goal`` (None if never), and the regret at each budget."""
    reached: int | None = None
    found = -math.inf
    regrets: list[float] = []
    marks = sorted(budgets)
    for i, (epoch, value, total) in enumerate(events, start=1):
        if epoch == total:
            found = max(found, value)
            if reached is None and value >= goal - 1e-9:
                reached = i
        while marks and i >= marks[0]:
            regrets.append(best - found if found > -math.inf else math.nan)
            marks.pop(0)
    regrets += [best - found if found > -math.inf else math.nan] * len(marks)
    return reached, regrets


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def _ratio(a: float, b: float) -> str:
    if math.isinf(a) and math.isinf(b):
        return "nan"
    if math.isinf(a) or b == 0:
        return "inf"
    return f"{a / b:.3f}"


def report(args: argparse.Namespace, results: Mapping[str, list[tuple[int | None, list[float], float]]],
           goals: Sequence[float], rows: Sequence[Mapping[str, Any]], budgets: Sequence[int],
           policies: Sequence[str], seconds: float, out: Any) -> None:
    """The table and the RESULT line over the seeds run so far."""
    epochs = len(rows[0]["curve"])
    best = max(r["curve"][-1] for r in rows)
    done = min(len(results[p]) for p in policies)
    own_target = "the random policy's own"
    print(f"# {args.task}: {len(rows)} recorded configurations x {epochs} epochs (best final {best:.2f}); "
          f"{done} seeds, {args.trials} trials per study, {WORKERS} at once, target: best of "
          f"{own_target if args.quick else f'{args.target_trials} simulated'} random full-budget "
          f"trials (median {_median(goals):.2f}); top-k k={args.k}; {seconds:.0f} s", file=out)
    head = " ".join(f"{'regret@' + str(b):>11}" for b in budgets)
    print(f"{'policy':<15} {'epochs to target (median)':>26} {'reached':>8} {head} {'s/study':>8}", file=out)
    medians: dict[str, float] = {}
    for policy in policies:
        runs = results[policy]
        spent = [r if r is not None else math.inf for r, _, _ in runs]
        medians[policy] = _median(spent)
        reached = sum(r is not None for r, _, _ in runs)
        regret = " ".join(f"{_median([g[i] for _, g, _ in runs if not math.isnan(g[i])]):>11.2f}"
                          for i in range(len(budgets)))
        print(f"{policy:<15} {medians[policy]:>26.1f} {reached:>5}/{len(runs):<2} {regret} "
              f"{_median([s for _, _, s in runs]):>8.1f}", file=out)

    def med(name: str) -> float:
        return medians.get(name, math.nan)

    print(f"RESULT prior_asha_over_random={_ratio(med('prior_asha'), med('random'))} "
          f"bad_prior_over_asha={_ratio(med('bad_prior_asha'), med('tpe_asha'))} "
          f"asha_over_random={_ratio(med('tpe_asha'), med('random'))} "
          f"topk_over_random={_ratio(med('topk'), med('random'))}", file=out, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    ap.add_argument("--task", default="dsprites_loc")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=100, help="trials per study")
    ap.add_argument("--target-trials", type=int, default=100, help="random full-budget trials for the target")
    ap.add_argument("--k", type=int, default=0, help="one_epoch_topk's k (default: trials // 8, at least 2)")
    ap.add_argument("--epoch-seconds", type=float, default=0.05)
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--quick", action="store_true",
                    help="1 seed, 10 trials, target the random policy's own best: the CI check")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.trials, args.epoch_seconds = 1, 10, 0.005
    args.k = args.k or max(2, args.trials // 8)
    policies = [p for p in args.policies.split(",") if p]
    unknown = sorted(set(policies) - set(POLICIES))
    if unknown:
        print(f"--policies: {', '.join(unknown)} unknown; expected some of {', '.join(POLICIES)}",
              file=sys.stderr)
        return 2

    import optuna
    import ray

    from genft_search.config import parse_study_config
    from genft_search.tune import run_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table = load_table(str(args.table))
    rows = table["tasks"][args.task]["configs"]
    epochs = int(table["meta"]["epochs"])
    best = max(r["curve"][-1] for r in rows)
    budgets = [epochs * m for m in (5, 10, 25)] if args.quick else [epochs * m for m in (10, 25, 50, 100)]
    work = Path(tempfile.mkdtemp(prefix="genft-replay-"))
    storage = f"sqlite:///{work / 'replay.db'}"
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("GENFT_RUNS_DIR", str(work / "runs"))
    # Ray workers import the trainable by module name (a function of __main__ would not unpickle there)
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    sys.path.insert(0, here)
    from search_replay import replay_trainable as trainable

    ray.init(address="local", num_cpus=WORKERS, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    results: dict[str, list[tuple[int | None, list[float], float]]] = {p: [] for p in policies}
    goals: list[float] = []
    started = time.time()
    try:
        for seed in range(args.seeds):
            runs: dict[str, tuple[list[tuple[int, float, int]], float]] = {}
            for policy in policies:
                log = work / f"{policy}-{seed}.log"
                log.touch()
                t0 = time.time()
                doc = policy_doc(policy, seed, args, table, log, storage)
                run_study(parse_study_config(doc, f"{policy}.yaml"), trainable=trainable,
                          progress=False)
                runs[policy] = read_log(log), time.time() - t0
            own = [v for e, v, n in runs["random"][0] if e == n] if "random" in runs else []
            goal = max(own) if args.quick and own else target(rows, seed, args.target_trials)
            goals.append(goal)
            for policy, (events, seconds) in runs.items():
                reached, regrets = measure(events, goal, budgets, best)
                results[policy].append((reached, regrets, seconds))
                print(f"# seed {seed} {policy}: {seconds:.1f} s, epochs to target {reached}, regrets "
                      f"{' '.join(f'{r:.2f}' for r in regrets)}", file=sys.stderr, flush=True)
            # the table so far: a run cut short still leaves its completed seeds
            report(args, results, goals, rows, budgets, policies, time.time() - started, sys.stderr)
    finally:
        ray.shutdown()

    report(args, results, goals, rows, budgets, policies, time.time() - started, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
