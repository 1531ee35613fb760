"""The replay benchmark: its trainable reports a recorded curve exactly, and ``--quick`` prints RESULT."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))
# Ray workers import the replay trainable by its module name
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH), os.environ.get("PYTHONPATH")) if p)
import search_replay  # noqa: E402

SHIPPED = BENCH / "data" / "curves_cpu.json.gz"


def _table(path: Path) -> Path:
    """A two-configuration table of the recorded format."""
    rows = [
        {"params": {"shared_dim": 64, "specific_dim": 0, "sigma1": "gelu", "sigma2": "identity",
                    "w0_ratio": 1.0, "scaling": 0.5, "dropout": 0.1, "bias": False, "lr": 1e-3,
                    "weight_decay": 1e-4, "label_smoothing": 0.0}, "group": "paper",
         "curve": [7.25, 11.5, 13.0]},
        {"params": {"shared_dim": 16, "specific_dim": 2, "init_a": "zeros", "init_b": "normal",
                    "sigma1": "tanh", "sigma2": "relu", "w0_ratio": 0.1, "scaling": 0.01, "dropout": 0.0,
                    "bias": True, "lr": 5e-3, "weight_decay": 0.0, "label_smoothing": 0.1},
         "group": "random", "curve": [6.0, 6.5, 9.75]},
    ]
    table = {"meta": {"epochs": 3, "wrong": rows[1]["params"]}, "tasks": {"dsprites_loc": {"configs": rows}}}
    with gzip.open(path, "wt") as fh:
        json.dump(table, fh)
    return path


def test_every_recorded_configuration_maps_to_itself(tmp_path: Path) -> None:
    tables = [_table(tmp_path / "t.json.gz")] + ([SHIPPED] if SHIPPED.exists() else [])
    for path in tables:
        for task in search_replay.load_table(str(path))["tasks"].values():
            rows = task["configs"]
            for i, row in enumerate(rows):
                j = search_replay.nearest(row["params"], rows)
                assert rows[j]["params"] == row["params"] and (j == i or rows[j]["curve"] == row["curve"])


def test_a_nearby_configuration_gets_the_nearest_curve(tmp_path: Path) -> None:
    rows = search_replay.load_table(str(_table(tmp_path / "t.json.gz")))["tasks"]["dsprites_loc"]["configs"]
    near_second = {**rows[1]["params"], "lr": 4e-3, "shared_dim": 20}
    assert search_replay.nearest(near_second, rows) == 1
    assert search_replay.nearest({**rows[0]["params"], "sigma1": "relu"}, rows) == 0


def test_measure_counts_epochs_until_a_finished_trial_reaches_the_target() -> None:
    events = [(1, 5.0, 3), (1, 8.0, 3), (2, 6.0, 3), (3, 7.0, 3), (2, 9.0, 3), (3, 10.0, 3)]
    reached, regrets = search_replay.measure(events, goal=9.5, budgets=[2, 4, 6], best=12.0)
    assert reached == 6
    assert regrets[0] != regrets[0] and regrets[1:] == [5.0, 2.0]  # nothing finished after 2 epochs: NaN


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("scheduler", ["fifo", "topk"])
def test_the_replay_trainable_reproduces_a_recorded_curve_exactly(scheduler: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real engine; ``topk`` pauses after epoch 1 and resumes from the checkpoint."""
    from genft_search.config import parse_study_config
    from genft_search.tune import run_study

    monkeypatch.setenv("GENFT_RUNS_DIR", str(tmp_path / "runs"))
    path = _table(tmp_path / "t.json.gz")
    rows = search_replay.load_table(str(path))["tasks"]["dsprites_loc"]["configs"]
    log = tmp_path / "events.log"
    log.touch()
    args = type("Args", (), {"task": "dsprites_loc", "trials": 2, "k": 2, "epoch_seconds": 0.01,
                             "table": path})()
    doc = search_replay.policy_doc(scheduler if scheduler == "topk" else "random", 0, args,
                                   search_replay.load_table(str(path)), log, f"sqlite:///{tmp_path / 's.db'}")
    doc["warm_start"] = [r["params"] for r in rows]
    study = run_study(parse_study_config(doc, "replay.yaml"), trainable=search_replay.replay_trainable,
                      progress=False)["dsprites_loc"]
    by_params = {json.dumps(r["params"], sort_keys=True): r["curve"] for r in rows}
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for trial in trials:
        curve = [trial.intermediate_values[e] for e in sorted(trial.intermediate_values)]
        assert curve == by_params[json.dumps(trial.params, sort_keys=True)]
    events = search_replay.read_log(log)
    assert sorted(v for _, v, _ in events) == sorted(v for r in rows for v in r["curve"])  # no epoch twice


@pytest.mark.slow
def test_quick_mode_prints_the_result_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(BENCH / "search_replay.py"), "--quick"], capture_output=True,
                          text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    # the target is the random study's own best: random reaches it, so a ratio over random is no nan
    number, either = r"(\d+\.\d+|inf)", r"(\d+\.\d+|inf|nan)"
    assert re.fullmatch(rf"RESULT prior_asha_over_random={number} bad_prior_over_asha={either} "
                        rf"asha_over_random={number} topk_over_random={number}", lines[-1]), lines[-1]
    for policy in search_replay.POLICIES:
        assert any(line.startswith(policy + " ") for line in lines), policy


def test_record_curves_draws_three_groups_with_both_centres() -> None:
    import record_curves

    from genft_search.paper import paper_setting

    drawn = record_curves.draw_configs("dsprites_loc", 30, seed=0)
    groups = [g for g, _ in drawn]
    assert len(drawn) == 30 and {g: groups.count(g) for g in set(groups)} == {"paper": 10, "wrong": 10,
                                                                              "random": 10}
    paper = paper_setting("vtab1k", "dsprites_loc") or {}
    assert drawn[0] == ("paper", {k: paper[k] for k in drawn[0][1]}) and drawn[1] == ("wrong",
                                                                                       record_curves.WRONG)
    space = search_replay.paper_space()
    for _, config in drawn:
        assert all(space.contains(k, v) for k, v in config.items() if k in space)
