"""Per-task best validation metric of several studies (methods) side by side, as a Markdown table.

Reads the study store only (no training): for each study ``<name>/<task>`` of the given names, the
best value among COMPLETE trials (the search objective; pruned trials never count as a final score),
the trial counts by state, the wall span of the study (first trial start to last trial end) and the
summed trial time. Used for the quickstart evidence in ``docs/evidence.md``:

    python benchmarks/quickstart_compare.py --storage sqlite:////tmp/evidence/genft_evidence.db \\
        quickstart quickstart_linear quickstart_lora

With ``--json`` one JSON object per row is printed instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

import optuna
from optuna.trial import TrialState

from genft_search.store import open_storage, redact_url, state_counts


def _span_s(trials: list[optuna.trial.FrozenTrial]) -> float | None:
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    if not starts or not ends:
        return None
    first: datetime = min(starts)
    last: datetime = max(ends)
    return (last - first).total_seconds()


def _trainable(trial: optuna.trial.FrozenTrial | None) -> int | None:
    """Method parameters plus head, as the trainable reported them in its last metrics."""
    metrics = (trial.user_attrs.get("metrics") or {}) if trial else {}
    if "trainable_params" not in metrics:
        return None
    return int(metrics["trainable_params"]) + int(metrics.get("head_params") or 0)


def _row(study: optuna.Study, name: str, task: str) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = None
    if complete:
        pick = max if maximize else min
        best = pick(complete, key=lambda t: t.values[0])
    counts = state_counts(study)
    busy = sum(t.duration.total_seconds() for t in trials if t.duration)
    return {
        "task": task,
        "study": name,
        "method": study.user_attrs.get("method"),
        "best_val": best.values[0] if best else None,
        "best_trial": best.number if best else None,
        "best_params": dict(best.params) if best else None,
        "trainable_params": _trainable(best),
        "complete": counts.get("complete", 0),
        "pruned": counts.get("pruned", 0),
        "fail": counts.get("fail", 0),
        "running": counts.get("running", 0),
        "span_s": _span_s(trials),
        "trial_time_s": busy,
    }


def collect(storage_url: str, names: list[str]) -> list[dict[str, Any]]:
    """One row per (task, study name) found in the store, ordered by task then by ``names``."""
    storage = open_storage(storage_url, create=False)
    all_names = sorted(s.study_name for s in storage.get_all_studies())
    rows = []
    for name in names:
        found = [n for n in all_names if n == name or n.startswith(name + "/")]
        if not found:
            print(f"warning: no study {name!r} in {redact_url(storage_url)}", file=sys.stderr)
        for full in found:
            task = full.split("/", 1)[1] if "/" in full else full
            rows.append(_row(optuna.load_study(study_name=full, storage=storage), name, task))
    order = {n: i for i, n in enumerate(names)}
    return sorted(rows, key=lambda r: (r["task"], order[r["study"]]))


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of :func:`collect`'s rows."""
    head = ("| task | method (study) | best val (complete trials) | complete / pruned / failed "
            "| trainable params of best (method + head) | study span (s) | summed trial time (s) |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['method']} (`{r['study']}`) | {_fmt(r['best_val'])} "
            f"| {r['complete']} / {r['pruned']} / {r['fail']} | {_fmt(r['trainable_params'])} "
            f"| {_fmt(r['span_s'], 0)} "
            f"| {_fmt(r['trial_time_s'], 0)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", help="study names (the study file's `name`)")
    parser.add_argument("--storage", required=True, help="study store URL")
    parser.add_argument("--json", action="store_true", help="print one JSON object per row")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = collect(args.storage, args.studies)
    if args.json:
        for r in rows:
            print(json.dumps(r, default=str))
    else:
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
