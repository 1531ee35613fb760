"""The study store: URLs, SQLite WAL, stale-trial recovery, counting, locks, export; and PostgreSQL.

Liveness, heartbeat and lock tests run on SQLite and PostgreSQL both (``rdb``): they are what
several runners on one store rely on, and the two backends lock differently.
"""

from __future__ import annotations

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


def test_recover_stale_trials_fails_and_requeues_once(rdb, unique_name):
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
    assert failed.user_attrs[store.ATTR_REQUEUED] is True
    assert trials[mine.number].state == optuna.trial.TrialState.RUNNING
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs[store.ATTR_RETRY_OF] == orphan.number

    # the retry is orphaned too: FAIL again, but not re-enqueued a second time
    retry = study.ask()
    assert retry.suggest_float("x", 0, 1) == x
    study._storage.set_trial_system_attr(retry._trial_id, store.ATTR_RUNNER, dead.id)
    assert store.recover_stale_trials(study) == [retry.number]
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    counts = store.state_counts(study)
    # finished = the COMPLETE one + the retry's FAIL (the re-enqueued FAIL does not count)
    assert counts["finished"] == 2 and counts["fail"] == 2 and counts["running"] == 1
    assert store.counted_trials(study) == 2


def test_remote_runner_is_judged_by_its_heartbeat(rdb, unique_name):
    study = optuna.create_study(study_name=f"{unique_name}/a", storage=rdb)
    remote = store.Runner("another-host.invalid", 4242, 1.0)
    trial = study.ask()
    study._storage.set_trial_system_attr(trial._trial_id, store.ATTR_RUNNER, remote.id)
    with store.Heartbeat(study, remote, interval=0.05):  # the beating thread writes beside this one
        time.sleep(0.2)
        assert store.recover_stale_trials(study, grace=5.0) == []
    beat = study._storage.get_study_system_attrs(study._study_id)[store.ATTR_HEARTBEAT + remote.id]
    assert time.time() - beat < 5.0
    study._storage.set_study_system_attr(study._study_id, store.ATTR_HEARTBEAT + remote.id, time.time() - 600)
    assert store.recover_stale_trials(study) == [trial.number]


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
