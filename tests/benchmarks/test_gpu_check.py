"""The prepared GPU check: its CPU smoke runs the same steps end to end, and its GPU settings parse.

The GPU run itself needs a CUDA machine (see benchmarks/README.md); here the smoke proves the script,
the synthetic VTAB-1k folder, the checkpoint and the study path work, and the GPU branch's arguments
are checked against the same parsers and schema, so the one GPU run does not fail on a typo.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_study  # noqa: E402
import method_step  # noqa: E402
from synthetic_vtab import write_checkpoint, write_task  # noqa: E402


def test_synthetic_task_and_checkpoint_load_with_the_trainables_own_readers(tmp_path):
    from trainables.data import vtab1k
    from trainables.models import build_model

    folder = write_task(tmp_path / "vtab-1k", "synthetic", classes=4, n_train=8, n_val=4, n_test=4, size=32)
    vtab1k.check_task(tmp_path / "vtab-1k", "synthetic")
    assert vtab1k.num_classes(tmp_path / "vtab-1k", "synthetic") == 4
    assert len(vtab1k.read_split(tmp_path / "vtab-1k", "synthetic", "train800val200")) == 12
    assert (folder / "images").is_dir()
    shape = gpu_study.SHAPES["cpu-smoke"]["model"]
    ckpt = write_checkpoint(tmp_path / "vit.safetensors", shape["name"], **gpu_study.model_kwargs(shape))
    model, info = build_model({**shape, "checkpoint": str(ckpt)}, num_classes=4)
    assert info.image_size == 32 and model.head.out_features == 4


def _gpu_branch_args(name: str) -> list[str]:
    text = SCRIPT.read_text()
    branch = text[text.index('elif [ -z "$MODE" ]'):text.index("else\n")]
    match = re.search(rf"{name}=\((.*?)\)", branch, re.S)
    assert match, name
    return shlex.split(match.group(1).replace("\\\n", " "))


def test_the_gpu_branch_parses_and_its_study_puts_four_trials_on_one_gpu(tmp_path):
    from genft_search.config import load_study_config
    from genft_search.tune._ray import fit_resources

    plan = method_step.plan_from_args(_gpu_branch_args("STEP_ARGS"))
    assert plan.models == {"vit_base_patch16_224": (64,)} and plan.img_size == 224
    assert plan.device == "cuda" and plan.amp
    assert _gpu_branch_args("STUDY_ARGS") == []
    shape = gpu_study.SHAPES["gpu"]
    path = tmp_path / "gpu_study.yaml"
    path.write_text(yaml.safe_dump(gpu_study.study_doc(tmp_path, shape)))
    config = load_study_config(path)
    assert config.budget.n_trials == 8 and config.resources.gpu == 0.25
    assert config.model.name == "vit_base_patch16_224" and shape["size"] == 224
    assert fit_resources(config, 16, 1) == 4


@pytest.mark.slow
def test_cpu_smoke_runs_the_whole_check(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(SCRIPT), str(out), "--cpu-smoke"], capture_output=True, text=True,
                          env=env, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:] + (out / "gpu_study.err").read_text()[-3000:]
    assert (out / "status.txt").read_text().split() == ["method_step", "0", "gpu_study", "0"]
    assert re.search(r"^RESULT genft_over_lora=\S+ ", (out / "method_step.txt").read_text(), re.M)
    assert "amp bf16" in (out / "method_step.txt").read_text()
    rows = json.loads((out / "gpu_study.json").read_text())
    assert [r["state"] for r in rows] == ["COMPLETE"] * 4
    assert all(r["peak_mem_mib"] > 0 for r in rows)
    result = (out / "gpu_study.txt").read_text().strip().splitlines()[-1]
    match = re.match(r"RESULT trials=4 complete=4 max_at_once=(\d+) peak_mem_mib_max=(\d+)$", result)
    assert match and int(match.group(1)) >= 1, result


def test_most_at_once_counts_overlaps_with_an_end_before_a_start_at_the_same_time():
    assert gpu_study.most_at_once([(0, 2), (1, 3), (2, 4)]) == 2
    assert gpu_study.most_at_once([(0, 5), (1, 2), (1, 3)]) == 3
    assert gpu_study.most_at_once([]) == 0
