"""The paper's per-task settings and results, read from the shared spec when it is there.

``paper_configs.yaml`` lives in ``<repo>/../shared/spec/`` (CI checks ``shared/`` out beside the
clone); ``GENFT_PAPER_CONFIGS`` points elsewhere. Installs without it still get reports, only without
the paper's numbers.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = ["paper_configs_path", "paper_result", "paper_setting"]

_REPO = Path(__file__).resolve().parents[2]
#: the GenFT hyperparameters every table of the paper's Appendix B starts with, in its order
_GENFT_COLUMNS = ("w0_ratio", "init_a", "init_b", "sigma1", "sigma2", "shared_dim", "specific_dim", "dropout",
                  "scaling")
_VTAB_COLUMNS = (*_GENFT_COLUMNS, "label_smoothing", "lr", "weight_decay", "epochs", "minutes", "paper_top1",
                 "num_classes", "group")
_FGVC_COLUMNS = (*_GENFT_COLUMNS, "lr", "minutes", "paper_top1", "num_classes")
_GLUE_COLUMNS = (*_GENFT_COLUMNS, "batch_size", "lr", "weight_decay", "minutes", "gpu_mem_gb", "paper_score",
                 "metric")
_COLUMNS = {"vtab1k": _VTAB_COLUMNS, "fgvc": _FGVC_COLUMNS, "glue": _GLUE_COLUMNS}
_NOT_SETTINGS = {"minutes", "paper_top1", "paper_score", "num_classes", "group", "metric", "gpu_mem_gb"}
_CODES = {
    "K-U": "kaiming_uniform",
    "X-U": "xavier_uniform",
    "N": "normal",
    "Z": "zeros",
    "R": "relu",
    "LR": "leaky_relu",
    "T": "tanh",
    "G": "gelu",
    "I": "identity",
}


def paper_configs_path() -> Path | None:
    """Where ``paper_configs.yaml`` is, or None when this install has no copy of the spec."""
    candidates = [
        os.environ.get("GENFT_PAPER_CONFIGS"),
        _REPO.parent / "shared" / "spec" / "paper_configs.yaml",
        _REPO / "shared" / "spec" / "paper_configs.yaml",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@cache
def _load(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _row(kind: str, task: str) -> dict[str, Any] | None:
    table = _load(paper_configs_path())
    section = table.get(kind) or {}
    values = (section.get("tasks") or {}).get(task)
    if kind not in _COLUMNS or not isinstance(values, list):
        return None
    row = dict(zip(_COLUMNS[kind], values))
    common = section.get("common") or {}
    for key in ("batch_size", "weight_decay", "epochs", "label_smoothing", "warmup_epochs"):
        if key in common and key not in row:
            row[key] = common[key]
    return row


def paper_setting(kind: str, task: str) -> dict[str, Any] | None:
    """The paper's hyperparameters for ``task`` in this project's names (codes spelled out)."""
    row = _row(kind, task)
    if row is None:
        return None
    return {
        k: _CODES.get(v, v) if isinstance(v, str) else v for k, v in row.items() if k not in _NOT_SETTINGS
    }


def paper_result(kind: str, task: str) -> tuple[float, str] | None:
    """The paper's reported score for ``task`` and what it measures, or None."""
    row = _row(kind, task)
    if row is None:
        return None
    if "paper_top1" in row:
        return float(row["paper_top1"]), "test top-1 (%), best of every 10 epochs, ViT-B/16 IN-21k"
    return float(row["paper_score"]), f"dev {row.get('metric', 'score')} (best epoch), RoBERTa-base"
