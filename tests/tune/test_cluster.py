"""Ray beyond one local instance: another Ray already on the machine, and a real two-node cluster."""

from __future__ import annotations

import optuna
import pytest

from genft_search import store
from tests.support.engine import run_cli, toy_study
from tests.support.ray_cluster import head_in_subprocess, ray_tmpdir


@pytest.mark.slow
def test_plain_run_starts_its_own_ray_when_another_is_up(write_study, sqlite_url, unique_name):
    """A ``ray start``-style head is where a bare ``ray.init()`` attaches (its bootstrap file); ``run``
    without ``--address`` used to fail there ("object_store_memory must not be provided")."""
    path = write_study(toy_study(unique_name, storage=sqlite_url))
    with ray_tmpdir() as tmp, head_in_subprocess(tmp) as address:
        result = run_cli("run", str(path), "--quiet", env={"RAY_TMPDIR": tmp}, timeout=300)
        assert result.returncode == 0, result.stderr
        lines = [ln for ln in result.stderr.splitlines() if ln.startswith("ray: ")]
        assert lines == [f"ray: another Ray instance is running at {address}; starting a separate local "
                         f"one for this run (--address auto runs on that one)"]
    study = optuna.load_study(study_name=f"{unique_name}/a", storage=sqlite_url)
    counts = store.state_counts(study)
    assert counts["complete"] == 4 and counts["running"] == 0
