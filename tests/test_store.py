"""The study store: URLs, SQLite WAL, stale-trial recovery, counting, locks, export; and PostgreSQL.

Liveness, heartbeat and lock tests run on SQLite and PostgreSQL both (``rdb``): they are what
several runners on one store rely on, and the two backends lock differently.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import optuna
import pytest
import sqlalchemy

from genft_search import store
from genft_search.errors import UserError
from tests.support.mixed_study import make_mixed_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """The store URL per backend; PostgreSQL studies named ``unique_name...`` are deleted afterwards."""
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
def rdb(backend_url: str) -> Iterator[optuna.storages.RDBStorage]:
    storage = store.open_storage(backend_url)
    yield storage
    storage.engine.dispose()


def test_redact_url_hides_only_the_password():
    url = "postgresql+psycopg://alice:s3cr3t-pw@db.example:5432/studies"
    shown = store.redact_url(url)
    assert "s3cr3t-pw" not in shown and "alice" in shown and "db.example" in shown and "***" in shown
    assert store.redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_resolve_order(monkeypatch):
    monkeypatch.setenv(store.STORAGE_ENV, "sqlite:///env.db")
    assert store.resolve_storage_url("sqlite:///cli.db", "sqlite:///file.db") == "sqlite:///cli.db"
    assert store.resolve_storage_url(None, "sqlite:///file.db") == "sqlite:///file.db"
    assert store.resolve_storage_url(None, None) == "sqlite:///env.db"
    monkeypatch.delenv(store.STORAGE_ENV)
    assert store.resolve_storage_url() == store.DEFAULT_STORAGE


def test_sqlite_is_opened_in_wal_mode(tmp_path):
    path = tmp_path / "s.db"
    rdb = store.open_storage(f"sqlite:///{path}")
    optuna.create_study(study_name="a", storage=rdb)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reader_is_not_blocked_by_an_open_write_transaction(tmp_path):
    """WAL: `status` reads while the runner holds a write transaction (rollback-journal mode would fail)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    writer = store.open_storage(url)
    study = optuna.create_study(study_name="a", storage=writer)
    study.enqueue_trial({})
    raw = sqlite3.connect(tmp_path / "s.db", timeout=0.1)
    raw.execute("BEGIN IMMEDIATE")
    raw.execute("UPDATE studies SET study_name = study_name")
    try:
        reader = store.open_storage(url, create=False)
        assert store.study_names(reader) == ["a"]
        assert len(optuna.load_study(study_name="a", storage=reader).trials) == 1
    finally:
        raw.rollback()
        raw.close()


def test_missing_store_and_folder_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no study store"):
        store.open_storage(f"sqlite:///{tmp_path / 'none.db'}", create=False)
    assert not (tmp_path / "none.db").exists()
    with pytest.raises(UserError, match="does not exist"):
        store.open_storage(f"sqlite:///{tmp_path / 'no' / 'dir.db'}")
    with pytest.raises(UserError, match="unsupported database"):
        store.open_storage("mongodb://localhost/x")


def test_unreachable_postgres_never_shows_the_password():
    url = "postgresql+psycopg://postgres:TopSecret-42@127.0.0.1:1/test"
    for call in (lambda: store.open_storage(url), lambda: store.probe_storage(url)):
        with pytest.raises(UserError) as info:
            call()
        assert "TopSecret-42" not in str(info.value) and "***" in str(info.value)


def _dead_runner() -> store.Runner:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    runner = store.Runner(store.socket.gethostname(), proc.pid, store._process_start(proc.pid) or 1.0)
    proc.wait()
    return runner


def test_recover_stale_trials_retries_a_point_up_to_the_cap_and_never_counts_it(rdb, unique_name):
    study = optuna.create_study(study_name=f"{unique_name}/a", storage=rdb)
    done = study.ask()
    done.suggest_float("x", 0, 1)
    study.tell(done, 1.0)
    dead = _dead_runner()
    orphan = study.ask()
    study._storage.set_trial_system_attr(orphan._trial_id, store.ATTR_RUNNER, dead.id)
    x = orphan.suggest_float("x", 0, 1)
    mine = study.ask()  # this process is alive: its trial must stay RUNNING
    study._storage.set_trial_system_attr(mine._trial_id, store.ATTR_RUNNER, store.Runner.current().id)

    assert store.recover_stale_trials(study) == [orphan.number]
    trials = {t.number: t for t in study.get_trials()}
    failed = trials[orphan.number]
    assert failed.state == optuna.trial.TrialState.FAIL
    assert dead.id in failed.user_attrs[store.ATTR_FAIL_REASON]
    assert failed.user_attrs[store.ATTR_REQUEUED] is True and failed.user_attrs[store.ATTR_ORPHANED] is True
    assert trials[mine.number].state == optuna.trial.TrialState.RUNNING
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs[store.ATTR_RETRY_OF] == orphan.number

    # the retries are orphaned too: each is retried until the cap, then the point is dropped
    for attempt in range(store.MAX_RETRIES):
        retry = study.ask()
        assert retry.suggest_float("x", 0, 1) == x
        study._storage.set_trial_system_attr(retry._trial_id, store.ATTR_RUNNER, dead.id)
        assert store.recover_stale_trials(study) == [retry.number]
        waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
        assert len(waiting) == (1 if attempt + 1 < store.MAX_RETRIES else 0)
    counts = store.state_counts(study)
    # a trial whose runner died never counts, however often: finished is the COMPLETE one only
    assert counts["finished"] == 1 and counts["fail"] == 1 + store.MAX_RETRIES and counts["failed"] == 0
    assert counts["running"] == 1 and store.counted_trials(study) == 1


def test_unowned_running_trial_is_stale_after_grace_on_the_database_clock(rdb, unique_name):
    study = optuna.create_study(study_name=f"{unique_name}/a", storage=rdb)
    trial = study.ask()  # no runner tag: e.g. a runner killed between ask and tag
    assert store.recover_stale_trials(study, grace=0.5) == []  # first seen now
    seen = study._storage.get_trial(trial._trial_id).system_attrs[store.ATTR_FIRST_SEEN]
    assert abs(seen - store.db_now(study)) < 5.0
    time.sleep(0.7)
    assert store.recover_stale_trials(study, grace=0.5) == [trial.number]


def test_remote_runner_is_judged_by_its_heartbeat_on_the_database_clock(rdb, unique_name, monkeypatch):
    study = optuna.create_study(study_name=f"{unique_name}/a", storage=rdb)
    remote = store.Runner("another-host.invalid", 4242, 1.0)
    trial = study.ask()
    study._storage.set_trial_system_attr(trial._trial_id, store.ATTR_RUNNER, remote.id)
    real_time = time.time
    with store.Heartbeat(study, remote, interval=0.05):  # the beating thread writes beside this one
        time.sleep(0.2)
        # this process's clock is ten minutes ahead: the heartbeat is still fresh on the database's clock
        monkeypatch.setattr(time, "time", lambda: real_time() + 600)
        assert store.recover_stale_trials(study, grace=5.0) == []
    monkeypatch.setattr(time, "time", real_time)
    beat = study._storage.get_study_system_attrs(study._study_id)[store.ATTR_HEARTBEAT + remote.id]
    assert abs(store.db_now(study) - beat) < 5.0
    study._storage.set_study_system_attr(study._study_id, store.ATTR_HEARTBEAT + remote.id,
                                         store.db_now(study) - 600)
    assert store.recover_stale_trials(study) == [trial.number]


def test_give_up_trial_leaves_a_finished_trial_alone(rdb, unique_name):
    study = optuna.create_study(study_name=f"{unique_name}/a", storage=rdb)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    frozen = study._storage.get_trial(trial._trial_id)
    study.tell(trial, 0.5)  # its owner finished it first
    assert store.give_up_trial(study, frozen, "runner gone") is False
    stored = study.get_trials()[0]
    assert stored.state == optuna.trial.TrialState.COMPLETE
    assert store.ATTR_FAIL_REASON not in stored.user_attrs
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


def test_late_result_goes_on_the_retry(rdb, unique_name):
    study = optuna.create_study(study_name=f"{unique_name}/a", storage=rdb)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.report(0.3, 1)
    me = store.Runner.current()
    assert store.give_up_trial(study, study._storage.get_trial(trial._trial_id), "runner judged dead")
    with store.study_lock(study):
        line = store.store_late_result(study, trial, optuna.trial.TrialState.COMPLETE, [0.9],
                                       {"budget": 2}, {1: 0.3, 2: 0.9}, me, n_trials=3)
    trials = study.get_trials()
    retry = next(t for t in trials if t.user_attrs.get(store.ATTR_RETRY_OF) == trial.number)
    assert line.endswith(f"its result is stored on its retry, trial {retry.number}")
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.value == 0.9
    assert retry.params == trials[0].params and retry.intermediate_values == {1: 0.3, 2: 0.9}
    assert retry.user_attrs["budget"] == 2 and store.state_counts(study)["finished"] == 1


def test_late_result_without_retry_is_a_new_trial_within_n_trials(rdb, unique_name):
    study = optuna.create_study(study_name=f"{unique_name}/a", storage=rdb)
    me = store.Runner.current()
    first = study.ask()
    first.suggest_float("x", 0, 1)
    store.give_up_trial(study, study._storage.get_trial(first._trial_id), "runner judged dead")
    for _ in range(store.MAX_RETRIES):  # the point's retries die too, until the cap: no retry is left
        retry = study.ask()
        retry.suggest_float("x", 0, 1)
        store.give_up_trial(study, study._storage.get_trial(retry._trial_id), "runner judged dead")
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    with store.study_lock(study):
        line = store.store_late_result(study, retry, optuna.trial.TrialState.COMPLETE, [0.7],
                                       {"budget": 1}, {1: 0.7}, me, n_trials=1)
    assert line.endswith("its result is stored as a new trial with the same point")
    kept = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(kept) == 1 and kept[0].value == 0.7 and kept[0].params == retry.params
    assert kept[0].user_attrs[store.ATTR_RETRY_OF] == retry.number
    with store.study_lock(study):  # the study is full now: a second late result is not stored
        line = store.store_late_result(study, first, optuna.trial.TrialState.COMPLETE, [0.8],
                                       {}, {}, me, n_trials=1)
    assert "already" in line and store.state_counts(study)["finished"] == 1


def test_study_lock_has_a_deadline_naming_the_holder(rdb, unique_name, monkeypatch):
    from genft_search.errors import StoreUnavailable

    monkeypatch.setenv("GENFT_LOCK_TIMEOUT_S", "0.5")

    name = f"{unique_name}/a"
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.study_lock(rdb, name):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    start = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable, match=r"study lock of .* has been held by another") as info, \
                store.study_lock(rdb, name):
            pass
    finally:
        release.set()
        holder.join()
    assert 0.5 <= time.monotonic() - start < 3.0 and "\n" not in str(info.value)
    assert "more than 0.5 s" in str(info.value)
    if rdb.engine.dialect.name == "postgresql":
        assert re.search(r"\(PostgreSQL backend pid \d+\)", str(info.value)), info.value
    with store.study_lock(rdb, name, timeout=0.5):  # free again
        pass


def test_db_now_is_the_servers_clock(rdb, unique_name, monkeypatch):
    study = optuna.create_study(study_name=f"{unique_name}/a", storage=rdb)
    before = time.time()
    monkeypatch.setattr(time, "time", lambda: before + 10_000)
    assert abs(store.db_now(study) - before) < 5.0


def test_transient_errors_are_retried_then_end_in_one_line(monkeypatch):
    from sqlalchemy import exc as sa_exc

    calls = []

    def flaky(n: int) -> int:
        calls.append(n)
        if len(calls) < 3:
            raise optuna.exceptions.StorageInternalError("commit failed") from sa_exc.OperationalError(
                "SELECT 1", {}, ConnectionRefusedError("connection refused"))
        return n

    assert store.retrying(flaky, 7, window=10) == 7 and len(calls) == 3
    with pytest.raises(ValueError):
        store.retrying(lambda: int("x"), window=10)  # not transient: raised at once

    def down() -> None:
        raise sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    url = "postgresql+psycopg://u:secret@db.invalid/x"
    fake = type("S", (), {"url": url})()
    start = time.monotonic()
    from genft_search.errors import StoreUnavailable

    with pytest.raises(StoreUnavailable) as info:
        store.retrying(down, storage=fake, window=1.0)
    assert 1.0 <= time.monotonic() - start < 3.0
    text = str(info.value)
    assert "\n" not in text and "secret" not in text and "unreachable for 1 s" in text
    assert "server closed the connection unexpectedly" in text
    monkeypatch.setenv(store.STORE_RETRY_ENV, "7.5")
    assert store.store_retry_window() == 7.5
    monkeypatch.setenv(store.STORE_RETRY_ENV, "soon")
    with pytest.raises(UserError, match="GENFT_STORE_RETRY_S"):
        store.store_retry_window()


def test_register_run_numbers_runs(rdb, unique_name):
    study = optuna.create_study(study_name=f"{unique_name}/a", storage=rdb)
    me = store.Runner.current()
    assert [store.register_run(study, me) for _ in range(3)] == [0, 1, 2]


def test_study_lock_excludes(rdb, unique_name):
    inside, overlaps = [], []

    def work():
        for _ in range(5):
            with store.study_lock(rdb, f"{unique_name}/a"):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(1)
                time.sleep(0.005)
                inside.pop()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlaps


def test_find_study_and_trial_records(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    make_mixed_study(url)
    rdb = store.open_storage(url)
    found = store.find_study(rdb, "exp")
    assert found.study_name == "exp/task_a"
    with pytest.raises(UserError, match="no study 'nope'"):
        store.find_study(rdb, "nope")
    rows = store.trial_records(found)
    assert [r["state"] for r in rows] == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    assert rows[2]["fail_reason"] == "FloatingPointError: nan" and rows[0]["budget"] == 4
    assert rows[2]["value"] is None and rows[1]["params_act_fn"] == "50%"
    assert set(rows[0]) >= {"number", "value", "budget", "duration_s", "params_lr"}
    assert store.best_trials(found)[0].number == 3


# ---------------------------------------------------------------------------------------------------
# PostgreSQL


@pytest.mark.postgres
def test_postgres_open_and_find(pg_url, unique_name):
    rdb = store.open_storage(pg_url)
    assert rdb.engine.dialect.name == "postgresql"
    optuna.create_study(study_name=f"{unique_name}/a", storage=rdb)
    assert store.find_study(rdb, unique_name).study_name == f"{unique_name}/a"
    rdb.engine.dispose()


@pytest.mark.postgres
def test_postgres_schema_created_once_by_concurrent_runners(pg_base_url):
    """Several runners opening an empty database at once: the schema lock prevents the creation race."""
    admin = sqlalchemy.create_engine(pg_base_url, isolation_level="AUTOCOMMIT")
    db = f"genft_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{db}"'))
    except Exception as exc:  # no CREATE DATABASE right: the shared database is all there is
        admin.dispose()
        pytest.skip(f"cannot create a scratch database ({type(exc).__name__})")
    url = pg_base_url.rsplit("/", 1)[0] + f"/{db}"
    code = ("import sys; from genft_search import store; import optuna; "
            "s = store.open_storage(sys.argv[1]); "
            "optuna.create_study(study_name='x', storage=s, load_if_exists=True); print('ok')")
    try:
        procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outputs]
        assert all(o[0].strip() == "ok" for o in outputs)
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_postgres_connections_notice_a_dead_network(pg_url):
    storage = store.open_storage(pg_url)
    try:
        assert storage.engine.pool._pre_ping
        with storage.engine.connect() as conn:
            params = conn.connection.driver_connection.info.get_parameters()
        assert params["keepalives"] == "1" and params["tcp_user_timeout"] == "30000"
        assert params["keepalives_idle"] == "10" and params["connect_timeout"] == "10"
    finally:
        storage.engine.dispose()


def test_cost_of_counts_gpus_else_cpus_and_copies_the_trainables_figures():
    metrics = {"peak_gpu_memory_mb": 5120.0, "examples_per_second": 410.0, "trainable_params": 270336,
               "val_top1": 70.0, "peak_rss_mb": float("nan")}
    gpu = store.cost_of(100.0, {"cpu": 4, "gpu": 0.25}, metrics)
    assert gpu == {"device": "cuda", "devices": 0.25, "wall_seconds": 100.0, "device_seconds": 25.0,
                   "peak_gpu_memory_mb": 5120.0, "examples_per_second": 410.0, "trainable_params": 270336}
    cpu = store.cost_of(10.0, {"cpu": 2, "gpu": 0}, {})
    assert cpu == {"device": "cpu", "devices": 2.0, "wall_seconds": 10.0, "device_seconds": 20.0}


def test_study_cost_sums_every_finished_trial_and_estimates_the_ones_without_cost(tmp_path):
    import datetime as dt

    from optuna.trial import FrozenTrial, TrialState

    study = optuna.create_study(study_name="c/a", storage=f"sqlite:///{tmp_path / 's.db'}",
                                direction="maximize")
    study.set_user_attr("resources", {"cpu": 1, "gpu": 0.5})
    start = dt.datetime(2026, 1, 1)
    gpu = {"device": "cuda"}
    rows = [(TrialState.COMPLETE, 1.0, {**gpu, "wall_seconds": 100, "device_seconds": 50.0,
                                        "peak_gpu_memory_mb": 900.0, "trainable_params": 7}),
            (TrialState.PRUNED, None, {**gpu, "wall_seconds": 40, "device_seconds": 20.0,
                                       "peak_gpu_memory_mb": 1200.0, "examples_per_second": 30.0,
                                       "trainable_params": 9}),
            (TrialState.FAIL, None, {**gpu, "wall_seconds": 10, "device_seconds": 5.0,
                                     "examples_per_second": 10.0}),
            (TrialState.FAIL, None, None),  # its runner was killed: 60 s x 0.5 GPU, estimated
            (TrialState.RUNNING, None, None)]  # not finished: not counted
    for number, (state, value, cost) in enumerate(rows):
        done = state != TrialState.RUNNING
        study.add_trial(FrozenTrial(
            number=number, state=state, value=value, values=None, datetime_start=start,
            datetime_complete=start + dt.timedelta(seconds=60) if done else None, params={},
            distributions={}, user_attrs={"cost": cost} if cost else {}, system_attrs={},
            intermediate_values={}, trial_id=number))
    total = store.study_cost(study)
    assert total.trials == 4 and total.estimated == 1 and total.unknown == 0
    assert total.gpu_seconds == pytest.approx(50 + 20 + 5 + 30) and total.cpu_seconds == 0.0
    assert total.wall_seconds == pytest.approx(100 + 40 + 10 + 60)
    assert total.device_hours == pytest.approx(105 / 3600) == total.gpu_hours
    assert total.peak_gpu_memory_mb == 1200.0 and total.examples_per_second == 20.0
    assert total.trainable_params == 7  # the best trial's, not the last one's
    assert "1 estimated" in total.summary() and "0.0292 GPU-h" in total.summary()
