"""``genft-search export``: a study's trials as CSV, JSON or a LaTeX table, from the store's records.

The store reads the trials (:func:`genft_search.store.trial_records`); how they are written is the
report's business, like every other table.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import optuna

from genft_search import store
from genft_search.errors import UserError
from genft_search.report._latex import booktabs, latex_escape

__all__ = ["export_trials"]

Rows = list[dict[str, Any]]


def _json(study: optuna.Study, rows: Rows, columns: list[str]) -> str:
    payload = {"study": study.study_name, "directions": [d.name.lower() for d in study.directions],
               "user_attrs": study.user_attrs, "trials": rows}
    return json.dumps(payload, indent=2, default=str) + "\n"


def _csv(study: optuna.Study, rows: Rows, columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _latex_cell(value: Any) -> str:
    if value is None:
        return "--"
    if isinstance(value, float):
        return f"{value:.4g}"
    return latex_escape(value)


def _latex(study: optuna.Study, rows: Rows, columns: list[str]) -> str:
    """The finished (complete or pruned) trials; reasons and durations left out."""
    keep = [c for c in columns if c not in ("fail_reason", "duration_s")]
    done = [r for r in rows if r["state"] in ("COMPLETE", "PRUNED")]
    return booktabs(
        f"trials of study {study.study_name}",
        "l" * len(keep),
        [latex_escape(c.removeprefix("params_")) for c in keep],
        [[_latex_cell(r.get(c)) for c in keep] for r in done],
    )


_FORMATS: dict[str, Callable[[optuna.Study, Rows, list[str]], str]] = {
    "csv": _csv,
    "json": _json,
    "latex": _latex,
}


def export_trials(study: optuna.Study, fmt: str) -> str:
    """The study's trials as CSV, JSON, or a LaTeX (booktabs) table of the finished ones."""
    if fmt not in _FORMATS:
        *first, last = _FORMATS
        raise UserError(f"export: --format: unknown format {fmt!r}; expected {', '.join(first)} or {last}")
    rows = store.trial_records(study)
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return _FORMATS[fmt](study, rows, columns)
