"""Fault drills: real ``genft-search run`` processes (each with its own local Ray) on a sleep trainable,
on SQLite and PostgreSQL, with the faults a shared study meets in practice.

- a runner "on another host" whose clock is ten minutes ahead joins a live runner's study: it takes none
  of the live runner's trials (liveness is judged on the database's clock);
- PostgreSQL behind a TCP proxy is cut for 10 s mid-trial: the runner finishes, exit 0, nothing RUNNING;
- the store gone for longer than ``GENFT_STORE_RETRY_S``: exit 3 and one line; the next run recovers;
- two runners with the same seeded sampler: no point is evaluated twice, exactly ``n_trials``;
- a runner SIGKILLed mid-trial while another runs: the survivor finishes the study at exactly ``n_trials``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from genft_search import store
from tests.support.engine import PG_HOST, PG_PORT, REPO, load_trials, run_cli, toy_study, wait_for
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'faults.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def _study_file(tmp_path: Path, name: str, *, n_trials: int, epochs: int = 4, sleep: float = 1.0,
                sampler: dict[str, Any] | None = None) -> Path:
    doc = toy_study(name, trainable="tests.support.sleep_trainable:train",
                    params={"x": {"float": [0.0, 1.0]}}, fixed={"epochs": epochs, "sleep": sleep},
                    sampler=sampler or {"name": "random", "seed": 1}, budget={"n_trials": n_trials},
                    resources={"cpu": 2})  # one trial at a time per runner
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _start(args: list[str], log: Path, env: dict[str, str] | None = None,
           module: str = "genft_search") -> subprocess.Popen[bytes]:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", module, *args], stdout=out, stderr=subprocess.STDOUT,
                                cwd=REPO, env={**os.environ, **(env or {})}, start_new_session=True)






def _kill(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)


def _owner_pid(trial: optuna.trial.FrozenTrial) -> int | None:
    runner = store.Runner.parse(trial.system_attrs.get(store.ATTR_RUNNER, ""))
    return runner.pid if runner else None


def _assert_exact(trials: list[optuna.trial.FrozenTrial], n_trials: int) -> None:
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states, states
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               or (t.state == TrialState.FAIL and not t.user_attrs.get(store.ATTR_ORPHANED))]
    assert len(counted) == n_trials, [(t.number, t.state.name, t.user_attrs) for t in trials]


def test_runner_on_another_host_with_a_skewed_clock_takes_no_live_trial(any_url, unique_name, tmp_path):
    """Liveness used to compare the other host's ``time.time()`` with the live runner's heartbeat: a clock
    ten minutes ahead made the live runner look dead, and its running trial was failed and retried."""
    n_trials = 8
    path = _study_file(tmp_path, unique_name, n_trials=n_trials, epochs=4, sleep=2.0)
    name = f"{unique_name}/a"
    live = _start(["run", str(path), "--storage", any_url, "--quiet"], tmp_path / "live.log")
    procs = [live]
    try:
        def live_trial_mid_way() -> list[int]:
            return [t.number for t in load_trials(any_url, name)
                    if t.state == TrialState.RUNNING and t.intermediate_values]

        running = wait_for(live_trial_mid_way, procs)
        other = _start(["run", str(path), "--storage", any_url, "--quiet"], tmp_path / "other.log",
                       env={"GENFT_TEST_HOST": "other-host.invalid", "GENFT_TEST_CLOCK_OFFSET_S": "600"},
                       module="tests.support.fault_runner")
        procs.append(other)

        def other_beats_beside_a_live_trial() -> tuple[bool]:
            rdb = optuna.storages.RDBStorage(any_url)
            try:
                study = optuna.load_study(study_name=name, storage=rdb)
                attrs = rdb.get_study_system_attrs(study._study_id)
                beats = [k for k in attrs if "other-host.invalid" in k]
                live_running = any(t.state == TrialState.RUNNING and _owner_pid(t) == live.pid
                                   for t in study.get_trials())
            finally:
                rdb.engine.dispose()
            return (live_running,) if beats else ()  # type: ignore[return-value]

        (overlapped,) = wait_for(other_beats_beside_a_live_trial, procs)
        assert overlapped, "the other runner started when the live runner had no trial running"
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        _kill(procs)
    logs = {n: (tmp_path / f"{n}.log").read_text() for n in ("live", "other")}
    assert codes == [0, 0], logs
    trials = load_trials(any_url, name)
    _assert_exact(trials, n_trials)
    assert all(t.state == TrialState.COMPLETE for t in trials), [(t.number, t.user_attrs) for t in trials]
    assert len(trials) == n_trials, "no trial was given up (so none was retried)"
    by_number = {t.number: t for t in trials}
    for number in running:
        assert _owner_pid(by_number[number]) == live.pid
    hosts = {store.Runner.parse(t.system_attrs[store.ATTR_RUNNER]).host for t in trials}  # type: ignore[union-attr]
    assert "other-host.invalid" in hosts, "the second runner took part"
    assert all("Traceback" not in text for text in logs.values())


@pytest.fixture
def pg_proxy(pg_url: str) -> Any:
    with TcpProxy((PG_HOST, PG_PORT)) as proxy:
        yield proxy, pg_url.replace(f"@{PG_HOST}:{PG_PORT}/", f"@127.0.0.1:{proxy.port}/")


@pytest.mark.postgres
def test_postgres_cut_for_10s_mid_trial(pg_proxy, pg_url, unique_name, tmp_path):
    proxy, url = pg_proxy
    n_trials = 3
    path = _study_file(tmp_path, unique_name, n_trials=n_trials, epochs=4, sleep=1.0)
    name = f"{unique_name}/a"
    runner = _start(["run", str(path), "--storage", url], tmp_path / "run.log")
    try:
        wait_for(lambda: [t for t in load_trials(pg_url, name)
                           if t.state == TrialState.RUNNING and t.intermediate_values], [runner])
        cut_at, before = time.monotonic(), proxy.connections
        with proxy.down():
            time.sleep(10)
        outage = time.monotonic() - cut_at
        code = runner.wait(timeout=600)
        assert proxy.connections > before, "the runner reconnected after the outage"
    finally:
        _kill([runner])
    log = (tmp_path / "run.log").read_text()
    assert code == 0, log
    assert outage >= 10
    assert "Traceback" not in log and "warning" not in log, log
    trials = load_trials(pg_url, name)
    _assert_exact(trials, n_trials)
    assert all(t.state == TrialState.COMPLETE for t in trials) and len(trials) == n_trials
    assert all(sorted(t.intermediate_values) == [1, 2, 3, 4] for t in trials), "no epoch was lost"
    assert f"{name}: {n_trials} finished ({n_trials} complete, 0 pruned, 0 failed)" in log
    print(f"outage {outage:.1f} s; reconnections {proxy.connections - before}")


@pytest.mark.postgres
def test_store_gone_longer_than_the_window_ends_with_exit_3_and_one_line(pg_proxy, pg_url, unique_name,
                                                                       tmp_path):
    proxy, url = pg_proxy
    n_trials = 3
    path = _study_file(tmp_path, unique_name, n_trials=n_trials, epochs=4, sleep=1.0)
    name = f"{unique_name}/a"
    runner = _start(["run", str(path), "--storage", url, "--quiet"], tmp_path / "run.log",
                    env={store.STORE_RETRY_ENV: "4"})
    try:
        wait_for(lambda: [t for t in load_trials(pg_url, name)
                           if t.state == TrialState.RUNNING and t.intermediate_values], [runner])
        proxy.cut()
        cut_at = time.monotonic()
        code = runner.wait(timeout=300)
        ended_after = time.monotonic() - cut_at
    finally:
        proxy.restore()
        _kill([runner])
    log = (tmp_path / "run.log").read_text()
    assert code == 3, log
    lines = [ln for ln in log.splitlines() if ln.strip()]
    assert len(lines) == 1, log
    assert lines[0].startswith("genft-search: error: storage: the study store postgresql+psycopg://")
    assert "has been unreachable for 4 s" in lines[0] and "run the same command again" in lines[0]
    assert ended_after < 60, ended_after
    print(f"runner ended {ended_after:.1f} s after the cut (window 4 s)")
    left = [t for t in load_trials(pg_url, name) if t.state == TrialState.RUNNING]
    assert left, "the lost runner's trial stays RUNNING for the next run to recover"

    again = run_cli("run", str(path), "--storage", url, "--quiet", cwd=REPO)
    assert again.returncode == 0, again.stdout + again.stderr
    trials = load_trials(pg_url, name)
    _assert_exact(trials, n_trials)
    for trial in left:
        recovered = next(t for t in trials if t.number == trial.number)
        assert recovered.state == TrialState.FAIL and recovered.user_attrs[store.ATTR_ORPHANED]
        assert any(t.user_attrs.get(store.ATTR_RETRY_OF) == trial.number and t.state == TrialState.COMPLETE
                   for t in trials)


def test_two_seeded_runners_never_evaluate_a_point_twice(any_url, unique_name, tmp_path):
    n_trials = 6
    path = _study_file(tmp_path, unique_name, n_trials=n_trials, epochs=2, sleep=0.5,
                       sampler={"name": "tpe", "seed": 1})
    name = f"{unique_name}/a"
    procs = [_start(["run", str(path), "--storage", any_url, "--quiet"], tmp_path / f"r{i}.log")
             for i in range(2)]
    try:
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        _kill(procs)
    logs = [(tmp_path / f"r{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs
    trials = load_trials(any_url, name)
    _assert_exact(trials, n_trials)
    assert len(trials) == n_trials
    points = [t.params["x"] for t in trials]
    assert len(set(points)) == n_trials, points
    seeds = {t.system_attrs[store.ATTR_SAMPLER_SEED] for t in trials}
    owners = {_owner_pid(t) for t in trials}
    assert len(owners) == 2 and len(seeds) == 2, (owners, seeds)
    assert 1 in seeds, "the study's first run uses the file's own seed"

    # resumed with a larger budget: new points again, under a third seed
    more = run_cli("run", str(path), "--storage", any_url, "--quiet", "--n-trials", "9", cwd=REPO)
    assert more.returncode == 0, more.stderr
    trials = load_trials(any_url, name)
    assert len(trials) == 9 and len({t.params["x"] for t in trials}) == 9
    assert len({t.system_attrs[store.ATTR_SAMPLER_SEED] for t in trials}) == 3


def test_survivor_finishes_a_killed_runners_work(any_url, unique_name, tmp_path):
    n_trials = 6
    path = _study_file(tmp_path, unique_name, n_trials=n_trials, epochs=4, sleep=1.0)
    name = f"{unique_name}/a"
    procs = [_start(["run", str(path), "--storage", any_url, "--quiet"], tmp_path / f"r{i}.log")
             for i in range(2)]
    doomed, survivor = procs
    try:
        def doomed_mid_trial() -> list[int]:
            trials = load_trials(any_url, name)
            mine = [t.number for t in trials if t.state == TrialState.RUNNING and t.intermediate_values
                    and _owner_pid(t) == doomed.pid]
            theirs = [t for t in trials if _owner_pid(t) == survivor.pid]
            return mine if theirs else []

        orphaned = wait_for(doomed_mid_trial, procs)
        os.killpg(doomed.pid, signal.SIGKILL)  # the runner and its local Ray, like a machine crash
        doomed.wait(timeout=60)
        killed_at = time.monotonic()
        code = survivor.wait(timeout=600)
        took = time.monotonic() - killed_at
    finally:
        _kill(procs)
    log = (tmp_path / "r1.log").read_text()
    assert code == 0, log
    assert "Traceback" not in log
    trials = load_trials(any_url, name)
    _assert_exact(trials, n_trials)
    for number in orphaned:
        dead = next(t for t in trials if t.number == number)
        assert dead.state == TrialState.FAIL and "died while the trial was RUNNING" in dead.user_attrs[
            store.ATTR_FAIL_REASON]
        retry = [t for t in trials if t.user_attrs.get(store.ATTR_RETRY_OF) == number]
        assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == dead.params
        assert _owner_pid(retry[0]) == survivor.pid
    print(f"survivor finished {took:.1f} s after the kill")


def test_a_result_finished_after_another_runner_gave_its_trial_up_is_kept(sqlite_url, unique_name, tmp_path,
                                                                       ray_local, capfd):
    """Another runner judges this one dead mid-trial (say its heartbeats could not reach the store) and
    gives the trial up; when the trial then finishes, its result goes on the retry, with one warning."""
    import threading

    from genft_search.config import load_study_config
    from genft_search.tune import run_study

    path = _study_file(tmp_path, unique_name, n_trials=2, epochs=3, sleep=1.0)
    name = f"{unique_name}/a"
    given_up: list[int] = []
    # the polling thread's plain Optuna client would create a new store's schema beside the runner
    store.open_storage(sqlite_url, create=True).engine.dispose()

    def give_up_mid_trial() -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            running = [t for t in load_trials(sqlite_url, name)
                       if t.state == TrialState.RUNNING and t.intermediate_values]
            if running:
                rdb = optuna.storages.RDBStorage(sqlite_url)
                study = optuna.load_study(study_name=name, storage=rdb)
                with store.study_lock(study):
                    if store.give_up_trial(study, running[0], "runner judged dead by the drill"):
                        given_up.append(running[0].number)
                rdb.engine.dispose()
                return
            time.sleep(0.2)

    other = threading.Thread(target=give_up_mid_trial, daemon=True)
    other.start()
    study = run_study(load_study_config(path), storage=sqlite_url, progress=False)["a"]
    other.join(timeout=5)
    assert given_up == [0]
    warnings = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("genft-search: warning:")]
    assert warnings == ["genft-search: warning: trial 0 was given up by another runner while this one ran it "
                        "(runner judged dead by the drill); its result is stored on its retry, trial 1"]
    trials = study.get_trials()
    _assert_exact(trials, 2)
    first, retry = trials[0], trials[1]
    assert first.state == TrialState.FAIL and first.user_attrs[store.ATTR_ORPHANED]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs[store.ATTR_RETRY_OF] == 0
    assert retry.params == first.params and sorted(retry.intermediate_values) == [1, 2, 3]
    assert retry.user_attrs[store.ATTR_BUDGET] == 3
    assert retry.value == pytest.approx(1.0 - (first.params["x"] - 0.3) ** 2 + 0.03)
