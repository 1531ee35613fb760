"""Two drivers on one PostgreSQL study: exactly ``n_trials``, no point twice, and one ASHA between them.

Two real ``genft-search run FILE`` processes (each with its own local Ray) share a study. Each trial
records its runner (``genft:runner``), so the test tells the drivers' trials apart. Driver B's trials
score lower than any of A's (its environment sets the sleep trainable's offset), and two gate files
order the one moment that matters: A's first trials report only once B has asked for a trial, and B's
first trial reports its first epoch only once two of A's trials have stored theirs. B's first rung
decision is then made with none of its own trials in the rung: a STOP there came from A's values, read
from the store. Every decision of both drivers is then recomputed with Ray's ASHA rule from the stored
intermediate values, over the trials that may have reached the rung before it (by their start and end
times).
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

from genft_search import store
from tests.support.engine import REPO, load_trials, toy_study, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
optuna.logging.set_verbosity(optuna.logging.WARNING)

N_TRIALS, EPOCHS, GRACE, ETA = 10, 4, 1, 3


def _start(path: Path, url: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "genft_search", "run", str(path), "--storage", url,
                                 "--quiet"], stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, **env}, start_new_session=True)




def _owner(trial: FrozenTrial) -> int | None:
    runner = store.Runner.parse(trial.system_attrs.get(store.ATTR_RUNNER, ""))
    return runner.pid if runner else None


def _value_at(trial: FrozenTrial, milestone: int) -> float | None:
    steps = [s for s in trial.intermediate_values if s >= milestone]
    return trial.intermediate_values[min(steps)] if steps else None


def _stops(value: float, rung: list[float]) -> bool:
    """Ray's ASHA rule: stop when below the (1 - 1/eta) quantile of the values already in the rung."""
    return bool(rung) and value < float(np.nanpercentile(rung, (1 - 1 / ETA) * 100))


def _outcomes(trial: FrozenTrial, milestone: int, others: list[FrozenTrial]) -> set[bool]:
    """Every decision Ray's rule could make for ``trial`` at ``milestone`` over the trials of ``others``
    that may have reached it first: those told before ``trial`` was asked surely did, those asked after
    it was told surely did not, any in between may have."""
    value = _value_at(trial, milestone)
    assert value is not None and trial.datetime_start and trial.datetime_complete
    sure, maybe = [], []
    for other in others:
        reached = _value_at(other, milestone)
        if other.number == trial.number or reached is None or other.datetime_start is None:
            continue
        if other.datetime_complete is not None and other.datetime_complete <= trial.datetime_start:
            sure.append(reached)
        elif other.datetime_start < trial.datetime_complete:
            maybe.append(reached)
    assert len(maybe) <= 12, f"trial {trial.number}: {len(maybe)} overlapping trials; the drill runs one " \
                             f"trial at a time per driver"
    found = set()
    for k in range(len(maybe) + 1):
        for subset in itertools.combinations(maybe, k):
            found.add(_stops(value, sure + list(subset)))
    return found


def _milestones() -> list[int]:
    """Ray's rungs for ``max_t=EPOCHS`` below the last epoch (a decision at ``max_t`` prunes nothing)."""
    count = int(np.log(EPOCHS / GRACE) / np.log(ETA) + 1)
    return [m for m in (GRACE * ETA**k for k in range(count)) if m < EPOCHS]


def test_two_drivers_share_one_asha_and_end_at_exactly_n_trials(pg_url, unique_name, tmp_path):
    doc = toy_study(unique_name, trainable="tests.support.driver_trainable:train",
                    params={"x": {"float": [0.0, 1.0]}}, fixed={"epochs": EPOCHS, "sleep": 0.3},
                    sampler={"name": "random", "seed": 1},
                    scheduler={"name": "asha", "grace_period": GRACE, "reduction_factor": ETA},
                    budget={"n_trials": N_TRIALS},
                    resources={"cpu": os.cpu_count() or 1})  # one trial at a time per driver
    path = tmp_path / "drivers.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    name = f"{unique_name}/a"
    gate_a, gate_b = tmp_path / "gate-a", tmp_path / "gate-b"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_start(path, pg_url, logs[0], {"GENFT_TEST_GATE": str(gate_a)}),
             _start(path, pg_url, logs[1], {"GENFT_TEST_GATE": str(gate_b), "GENFT_TEST_OFFSET": "-1"})]
    pid_a, pid_b = (p.pid for p in procs)
    try:
        # both drivers hold a trial before either reports; then A's first two trials reach rung 1
        wait_for(lambda: {pid_a, pid_b} <= {_owner(t) for t in load_trials(pg_url, name)}, procs, logs)
        gate_a.touch()
        wait_for(lambda: len([t for t in load_trials(pg_url, name)
                               if _owner(t) == pid_a and GRACE in t.intermediate_values]) >= 2, procs, logs)
        gate_b.touch()
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=60)
    assert codes == [0, 0], [log.read_text()[-3000:] for log in logs]

    trials = load_trials(pg_url, name)
    states = [t.state for t in trials]
    assert len(trials) == N_TRIALS, [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}, states
    assert len({t.params["x"] for t in trials}) == N_TRIALS, "a point was evaluated twice"
    by_owner = {pid: [t for t in trials if _owner(t) == pid] for pid in (pid_a, pid_b)}
    assert all(by_owner.values()) and len(by_owner[pid_a]) + len(by_owner[pid_b]) == N_TRIALS, by_owner

    # B's first decision: none of its own trials were in the rung, so a STOP came from A's values
    first_b = min(by_owner[pid_b], key=lambda t: t.number)
    assert first_b.state == TrialState.PRUNED and first_b.user_attrs[store.ATTR_BUDGET] == GRACE, first_b
    assert _outcomes(first_b, GRACE, by_owner[pid_b]) == {False}, "B's own trials alone would not stop it"
    assert True in _outcomes(first_b, GRACE, trials)

    # every decision of either driver is Ray's rule over both drivers' trials
    decisions = 0
    for trial in trials:
        budget = trial.user_attrs[store.ATTR_BUDGET]
        for milestone in _milestones():
            if budget < milestone:
                continue
            stopped = trial.state == TrialState.PRUNED and budget == milestone
            assert stopped in _outcomes(trial, milestone, trials), \
                (trial.number, milestone, stopped, _value_at(trial, milestone),
                 [(t.number, _owner(t), t.intermediate_values) for t in trials])
            decisions += 1
    assert decisions >= N_TRIALS
    assert all(t.user_attrs[store.ATTR_BUDGET] in (*_milestones(), EPOCHS) for t in trials)
