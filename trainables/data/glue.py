"""GLUE tasks from local files: the official TSVs or any csv/json/jsonl/parquet table.

A task folder is ``<root>/<dir>/`` where ``<dir>`` is the official GLUE folder name (``CoLA``,
``SST-2``, ``MRPC``, ``STS-B``, ``QQP``, ``MNLI``, ``QNLI``, ``RTE``, ``WNLI``) or the task name
(``cola``, ``sst2``, ...). Its files are ``train.*`` and ``dev.*`` (MNLI: ``dev_matched.*``; also
``validation.*`` / ``validation_matched.*`` as the HF ``datasets`` exports name them), where ``*`` is
``tsv``, ``csv``, ``json``, ``jsonl`` or ``parquet``. Columns are found by name, accepting both the
official TSV headers (``#1 String``, ``gold_label``, ``is_duplicate``, ...) and the ``datasets``
field names (``premise``, ``question1``, ``label``, ...); CoLA's headerless TSV is read by position.
String labels (``entailment``, ...) map to the ids the ``datasets`` GLUE builder uses.

A task outside the table is read when the data config names ``text_fields`` (one or two column
names), ``label_field`` (default ``label``), ``num_labels`` and optionally ``metric``
(``accuracy``, ``matthews``, ``pearson``). ``train_file`` / ``dev_file`` override the file names.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from genft_search.errors import UserError

__all__ = [
    "SPLITS",
    "TASKS",
    "Examples",
    "GlueTask",
    "PadCollator",
    "TokenizedDataset",
    "compute_metric",
    "get_task",
    "read_split",
]

SPLITS = ("train", "dev")
SUFFIXES = (".tsv", ".csv", ".jsonl", ".json", ".parquet")
METRICS = ("accuracy", "matthews", "pearson")


@dataclass(frozen=True)
class GlueTask:
    """How one task's files are read and scored.

    ``text_fields`` holds, per input text, the column names it may have (official TSV name and the
    ``datasets`` name); ``positions`` the column indices in a headerless TSV (text columns, label).
    """

    name: str
    text_fields: tuple[tuple[str, ...], ...]
    num_labels: int
    metric: str = "accuracy"
    label_fields: tuple[str, ...] = ("label",)
    label_names: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()
    dev_names: tuple[str, ...] = ("dev", "validation")
    positions: tuple[tuple[int, ...], int] | None = None

    @property
    def is_regression(self) -> bool:
        return self.metric == "pearson"

    @property
    def metric_key(self) -> str:
        return self.metric


_PAIR = (("sentence1",), ("sentence2",))
_NLI = ("entailment", "not_entailment")

TASKS: dict[str, GlueTask] = {
    "cola": GlueTask("cola", (("sentence",),), 2, "matthews", dirs=("CoLA",), positions=((3,), 1)),
    "sst2": GlueTask("sst2", (("sentence",),), 2, dirs=("SST-2",)),
    "mrpc": GlueTask("mrpc", (("#1 String", "sentence1"), ("#2 String", "sentence2")), 2,
                     label_fields=("Quality", "label"), dirs=("MRPC",)),
    "stsb": GlueTask("stsb", _PAIR, 1, "pearson", label_fields=("score", "label"), dirs=("STS-B",)),
    "qqp": GlueTask("qqp", (("question1",), ("question2",)), 2, label_fields=("is_duplicate", "label"),
                    dirs=("QQP",)),
    "mnli": GlueTask("mnli", (("sentence1", "premise"), ("sentence2", "hypothesis")), 3,
                     label_fields=("gold_label", "label"),
                     label_names=("entailment", "neutral", "contradiction"),
                     dirs=("MNLI",), dev_names=("dev_matched", "validation_matched")),
    "qnli": GlueTask("qnli", (("question",), ("sentence",)), 2, label_names=_NLI, dirs=("QNLI",)),
    "rte": GlueTask("rte", _PAIR, 2, label_names=_NLI, dirs=("RTE",)),
    "wnli": GlueTask("wnli", _PAIR, 2, dirs=("WNLI",)),
    # the built-in offline tasks (trainables.data.builtin_text), single sentences like SST-2
    "tweet_sentiment": GlueTask("tweet_sentiment", (("sentence",),), 2),
    "bbc_news": GlueTask("bbc_news", (("sentence",),), 5),
}


def get_task(task: str, data_cfg: Mapping[str, Any] | None = None) -> GlueTask:
    """The task's reading/scoring rules: from the table, or from ``text_fields`` etc. in the data config."""
    cfg = dict(data_cfg or {})
    custom = cfg.get("text_fields")
    if custom is None:
        if task in TASKS:
            return TASKS[task]
        raise UserError(f"data: tasks: {task!r} is not a known GLUE task; expected one of "
                        f"{', '.join(TASKS)} or data.text_fields/num_labels for a custom task")
    fields = [custom] if isinstance(custom, str) else list(custom)
    if not 1 <= len(fields) <= 2 or not all(isinstance(f, str) and f for f in fields):
        raise UserError(f"data: text_fields: {custom!r}; expected one or two column names")
    base = TASKS.get(task)
    metric = str(cfg.get("metric", base.metric if base else "accuracy"))
    if metric not in METRICS:
        raise UserError(f"data: metric: {metric!r}; expected one of {', '.join(METRICS)}")
    default_labels = 1 if metric == "pearson" else (base.num_labels if base else None)
    num_labels = cfg.get("num_labels", default_labels)
    if not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 1:
        raise UserError(f"data: num_labels: {num_labels!r}; expected a positive integer (1 for regression)")
    label = cfg.get("label_field", "label")
    return GlueTask(task, tuple((f,) for f in fields), num_labels, metric, label_fields=(str(label),),
                    label_names=base.label_names if base else (), dirs=base.dirs if base else (),
                    dev_names=base.dev_names if base else ("dev", "validation"))


# -- files ------------------------------------------------------------------------------------------
def task_dir(root: str | Path, spec: GlueTask) -> Path:
    """``<root>/<official name>`` or ``<root>/<task>``; ``root`` itself when it holds the files."""
    root = Path(root).expanduser()
    for name in (*spec.dirs, spec.name, spec.name.upper()):
        if (root / name).is_dir():
            return root / name
    if any((root / f"train{s}").is_file() for s in SUFFIXES):
        return root
    expected = " or ".join(f"<root>/{n}/" for n in (*spec.dirs, spec.name))
    raise UserError(f"{root}: data: root: no folder for GLUE task {spec.name!r}; expected {expected}")


def split_file(root: str | Path, spec: GlueTask, split: str,
               data_cfg: Mapping[str, Any] | None = None) -> Path:
    """The file holding ``split`` (``train`` or ``dev``) of the task, or a ``UserError`` naming it."""
    if split not in SPLITS:
        raise UserError(f"data: split: {split!r}; expected one of {', '.join(SPLITS)}")
    cfg = dict(data_cfg or {})
    folder = task_dir(root, spec)
    override = cfg.get(f"{split}_file")
    if override:
        path = Path(str(override)).expanduser()
        path = path if path.is_absolute() else folder / path
        if not path.is_file():
            raise UserError(f"{path}: data: {split}_file: file is missing; expected an existing "
                            f"{'/'.join(s[1:] for s in SUFFIXES)} file")
        return path
    stems = ("train",) if split == "train" else spec.dev_names
    for stem in stems:
        for suffix in SUFFIXES:
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    raise UserError(f"{folder}: data: root: GLUE {split} file is missing for {spec.name!r}; "
                    f"expected {folder}/{stems[0]}.tsv (or .csv/.json/.jsonl/.parquet)")


@dataclass
class Examples:
    """One split in memory: the input texts (one tuple per example) and labels (int, or float for STS-B)."""

    texts: list[tuple[str, ...]]
    labels: np.ndarray
    source: Path
    skipped: int = 0
    columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Examples:
        idx = np.asarray(indices, dtype=np.int64)
        return Examples([self.texts[i] for i in idx], self.labels[idx], self.source, columns=self.columns)

    @staticmethod
    def concat(parts: Sequence[Examples]) -> Examples:
        texts = [t for part in parts for t in part.texts]
        labels = np.concatenate([p.labels for p in parts])
        return Examples(texts, labels, parts[0].source, columns=parts[0].columns)


def _find(columns: Sequence[str], aliases: Sequence[str]) -> int | None:
    lowered = [c.strip().lower() for c in columns]
    for alias in aliases:
        if alias.lower() in lowered:
            return len(lowered) - 1 - lowered[::-1].index(alias.lower())  # the last one (MNLI: gold_label)
    return None


def _layout(spec: GlueTask, columns: Sequence[str], path: Path) -> tuple[list[int], int] | None:
    """(text column indices, label column index) for a header, or None if the header lacks them."""
    found = [_find(columns, aliases) for aliases in spec.text_fields]
    texts = [t for t in found if t is not None]
    label = _find(columns, spec.label_fields)
    if len(texts) < len(found):
        return None
    if label is None:
        raise UserError(f"{path}: data: label column is missing; expected a column named "
                        f"{' or '.join(repr(f) for f in spec.label_fields)} (columns: {', '.join(columns)})")
    return [int(t) for t in texts], label


def _missing_text(spec: GlueTask, columns: Sequence[str], path: Path) -> UserError:
    wanted = ", ".join(" or ".join(repr(a) for a in aliases) for aliases in spec.text_fields)
    return UserError(f"{path}: data: text_fields: columns missing for {spec.name!r}; expected {wanted} "
                     f"(found: {', '.join(map(str, columns)) or 'none'})")


def _read_tsv_rows(path: Path, limit: int | None = None) -> list[list[str]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    rows: list[list[str]] = []
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:  # MRPC has a BOM
        for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row:
                rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
    return rows


def _read_table(path: Path, limit: int | None = None) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a csv/json/jsonl/parquet file (pandas; ``datasets`` is not needed)."""
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, nrows=limit, dtype=object, keep_default_na=False,
                                encoding_errors="replace")
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            lines = suffix == ".jsonl" or _looks_like_json_lines(path)
            frame = pd.read_json(path, lines=lines, dtype=False, nrows=limit if lines else None)
    except (ValueError, OSError, UnicodeError) as error:
        raise UserError(f"{path}: data: cannot read the file ({type(error).__name__}); "
                        f"expected a valid {suffix[1:]} table") from None
    if limit is not None:
        frame = frame.head(limit)
    return [str(c) for c in frame.columns], frame.to_numpy(dtype=object).tolist()


def _looks_like_json_lines(path: Path) -> bool:
    with path.open(encoding="utf-8", errors="replace") as handle:
        head = handle.read(2048).lstrip()
    return head.startswith("{") and "\n" in head and not head.startswith("{\n")


def _header_and_rows(spec: GlueTask, path: Path, limit: int | None = None
                     ) -> tuple[list[str], list[list[Any]], tuple[list[int], int]]:
    if path.suffix.lower() != ".tsv":
        columns, rows = _read_table(path, limit)
        layout = _layout(spec, columns, path)
        if layout is None:
            raise _missing_text(spec, columns, path)
        return columns, rows, layout
    rows = _read_tsv_rows(path, None if limit is None else limit + 1)
    if not rows:
        raise UserError(f"{path}: data: the file is empty; expected a GLUE TSV with examples")
    layout = _layout(spec, rows[0], path)
    if layout is not None:
        return rows[0], rows[1:], layout
    if spec.positions is not None:  # CoLA: no header
        texts, label = spec.positions
        return [], rows[:limit] if limit is not None else rows, (list(texts), label)
    raise _missing_text(spec, rows[0], path)


def _label(spec: GlueTask, value: Any, path: Path, line: int) -> float | int | None:
    text = str(value).strip()
    if text in ("", "-", "None", "nan"):
        return None  # unlabelled rows (GLUE test files, MNLI's '-') are skipped
    if spec.is_regression:
        try:
            return float(text)
        except ValueError:
            raise UserError(f"{path}: line {line}: label {text!r} is not a number; expected a similarity "
                            "score (STS-B: 0-5)") from None
    lowered = [n.lower() for n in spec.label_names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not number.is_integer() or not 0 <= number < spec.num_labels:
        names = f" or one of {', '.join(spec.label_names)}" if spec.label_names else ""
        raise UserError(f"{path}: line {line}: label {text!r} is invalid for {spec.name!r}; expected an "
                        f"integer in [0, {spec.num_labels - 1}]{names}")
    return int(number)


def read_split(root: str | Path, spec: GlueTask, split: str, data_cfg: Mapping[str, Any] | None = None,
               limit: int | None = None) -> Examples:
    """Read ``split`` of the task (``limit``: only the first rows, for quick checks)."""
    path = split_file(root, spec, split, data_cfg)
    columns, rows, (text_cols, label_col) = _header_and_rows(spec, path, limit)
    offset = 2 if columns and path.suffix.lower() in (".tsv", ".csv") else 1
    needed = max(*text_cols, label_col) + 1
    texts: list[tuple[str, ...]] = []
    labels: list[float | int] = []
    skipped = 0
    for number, row in enumerate(rows):
        if len(row) < needed:
            skipped += 1  # malformed lines exist in the official QQP/MNLI files
            continue
        label = _label(spec, row[label_col], path, number + offset)
        if label is None:
            skipped += 1
            continue
        texts.append(tuple("" if row[i] is None else str(row[i]) for i in text_cols))
        labels.append(label)
    if not texts:
        raise UserError(f"{path}: data: no labelled examples for {spec.name!r}; expected rows with "
                        f"{' and '.join(a[0] for a in spec.text_fields)} and a label")
    dtype = np.float32 if spec.is_regression else np.int64
    return Examples(texts, np.asarray(labels, dtype=dtype), path, skipped, list(columns))


# -- metrics ----------------------------------------------------------------------------------------
def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predictions) == np.asarray(labels))) if len(labels) else 0.0


def matthews(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation (multi-class form, as in GLUE's CoLA); 0 when it is undefined."""
    pred = np.asarray(predictions).astype(np.int64)
    true = np.asarray(labels).astype(np.int64)
    size = int(max(pred.max(initial=0), true.max(initial=0))) + 1
    confusion = np.zeros((size, size), dtype=np.float64)
    np.add.at(confusion, (true, pred), 1.0)
    t_sum, p_sum = confusion.sum(axis=1), confusion.sum(axis=0)
    correct, samples = np.trace(confusion), confusion.sum()
    cov_tp = correct * samples - np.dot(t_sum, p_sum)
    cov_pp = samples**2 - np.dot(p_sum, p_sum)
    cov_tt = samples**2 - np.dot(t_sum, t_sum)
    denominator = np.sqrt(cov_tt * cov_pp)
    return float(cov_tp / denominator) if denominator > 0 else 0.0


def pearson(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Pearson correlation; 0 when a side is constant (undefined), so a trial's score stays finite."""
    x = np.asarray(predictions, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.dot(x, x) * np.dot(y, y))
    return float(np.dot(x, y) / denominator) if denominator > 0 else 0.0


_METRIC_FNS = {"accuracy": accuracy, "matthews": matthews, "pearson": pearson}


def compute_metric(spec: GlueTask, outputs: np.ndarray, labels: np.ndarray) -> float:
    """The task's metric in percent (as GLUE and the paper report it) from model outputs (logits)."""
    outputs = np.asarray(outputs)
    predictions = outputs.reshape(-1) if spec.is_regression else outputs.argmax(axis=-1)
    return 100.0 * _METRIC_FNS[spec.metric](predictions, labels)


# -- tokenised data and dynamic padding -------------------------------------------------------------
class TokenizedDataset(Dataset):
    """Examples tokenised once (no padding); :class:`PadCollator` pads each batch to its longest.

    ``segments=False`` drops ``token_type_ids`` (models with one segment type, e.g. RoBERTa).
    """

    def __init__(self, examples: Examples, tokenizer: Any, max_length: int, segments: bool = True) -> None:
        columns = list(zip(*examples.texts)) if len(examples) else [()]
        encoded = tokenizer(*[list(c) for c in columns[:2]], truncation=True, max_length=max_length,
                            padding=False)
        keys = [k for k in ("input_ids", "token_type_ids", "attention_mask")
                if k in encoded and (segments or k != "token_type_ids")]
        self.features = [{k: encoded[k][i] for k in keys} for i in range(len(examples))]
        self.labels = torch.from_numpy(examples.labels)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> tuple[dict[str, list[int]], torch.Tensor]:
        return self.features[index], self.labels[index]


class PadCollator:
    """Pad a batch to its longest sequence (rounded up to ``multiple_of``, e.g. 8 for tensor cores)."""

    def __init__(self, pad_token_id: int, multiple_of: int = 1) -> None:
        self.pad_token_id = int(pad_token_id)
        self.multiple_of = max(1, int(multiple_of))

    def __call__(self, batch: Sequence[tuple[Mapping[str, list[int]], torch.Tensor]]
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        features, labels = zip(*batch)
        longest = max(len(f["input_ids"]) for f in features)
        length = -(-longest // self.multiple_of) * self.multiple_of
        out: dict[str, torch.Tensor] = {}
        for key in features[0]:
            fill = self.pad_token_id if key == "input_ids" else 0
            out[key] = torch.tensor([list(f[key]) + [fill] * (length - len(f[key])) for f in features],
                                    dtype=torch.long)
        if "attention_mask" not in out:
            sizes = [len(f["input_ids"]) for f in features]
            mask = [[1] * n + [0] * (length - n) for n in sizes]
            out["attention_mask"] = torch.tensor(mask, dtype=torch.long)
        return out, torch.stack(list(labels))
