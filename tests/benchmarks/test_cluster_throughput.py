"""The simulated-cluster benchmark runs end to end and prints its sequential figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cluster_throughput_prints_the_sequential_figures(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cluster_throughput.py"), "--slots", "2",
                           "--tasks", "2", "--trials", "2", "--epoch-seconds", "0.01"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    match = re.match(r"RESULT util_sequential=(\S+) util_sequential_ran=(\S+) makespan_s=(\S+) slots=2$",
                     last)
    assert match, last
    util, ran, makespan = (float(v) for v in match.groups())
    assert 0 < ran <= util <= 1 and makespan > 0
    assert "not built yet" in proc.stdout
