"""The simulated-cluster benchmark runs both modes (tasks one after another, all at once) end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cluster_throughput_prints_both_modes_and_the_result_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cluster_throughput.py"), "--slots", "2",
                           "--tasks", "2", "--trials", "2", "--epoch-seconds", "0.01"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    match = re.match(r"RESULT util_at_once=(\S+) util_sequential=(\S+) makespan_ratio=(\S+) "
                     r"util_at_once_ran=(\S+) util_sequential_ran=(\S+) util_at_once_ideal=(\S+) "
                     r"util_sequential_ideal=(\S+) slots=2$", last)
    assert match, last
    util_all, util_seq, ratio, ran_all, ran_seq, ideal_all, ideal_seq = (float(v) for v in match.groups())
    assert 0 < ran_all <= util_all <= 1 and 0 < ran_seq <= util_seq <= 1 and ratio > 0
    assert 0 < ideal_seq <= ideal_all <= 1
    assert "idle slot time: ramp" in proc.stdout
    assert "## sequential" in proc.stdout and "## at_once" in proc.stdout
