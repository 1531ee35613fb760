"""Read commands never write: no store created, no DDL, no race with a runner creating a new store.

``status``, ``best``, ``export``, ``report``, ``compare`` and ``dashboard`` open the store with
``create=False``; ``ablate`` reads a ``from_study`` store the same way before its checks.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml

from genft_search import store
from genft_search.cli import main
from genft_search.errors import UserError

optuna.logging.set_verbosity(optuna.logging.WARNING)

READERS = [["status"], ["best", "x"], ["export", "x", "--format", "csv"], ["report", "x"],
           ["compare", "x"], ["dashboard", "--port", "1"]]


def _ablation_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "abl.yaml"
    path.write_text(yaml.safe_dump({
        "name": "abl", "storage": url, "method": "genft", "model": {"name": "builtin"},
        "data": {"kind": "vtab1k", "root": "builtin", "tasks": ["dsprites_loc"]},
        "base": "best", "from_study": "search", "fixed": {"epochs": 2},
    }))
    return path


def _tables(url: str) -> list[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(sqlalchemy.inspect(conn).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def fresh_pg_database(pg_base_url: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own (the shared ``test`` database already has tables)."""
    name = f"genft_ro_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(pg_base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = pg_base_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.postgres
def test_read_commands_run_no_ddl_on_an_empty_postgres_database(fresh_pg_database, tmp_path, capsys):
    for args in READERS:
        assert main([*args, "--storage", fresh_pg_database]) == 2, args
    assert main(["ablate", str(_ablation_file(tmp_path, fresh_pg_database))]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == len(READERS) + 1 and all("no study store at" in line for line in err), err
    assert _tables(fresh_pg_database) == [], "a read command created Optuna's schema"


def test_read_commands_do_not_touch_an_empty_or_half_created_sqlite_store(tmp_path, capsys):
    empty = tmp_path / "empty.db"
    empty.touch()
    for args in READERS:
        assert main([*args, "--storage", f"sqlite:///{empty}"]) == 2, args
    assert main(["ablate", str(_ablation_file(tmp_path, f"sqlite:///{empty}"))]) == 2
    assert "no study store at" in capsys.readouterr().err
    assert empty.stat().st_size == 0

    half = tmp_path / "half.db"  # the tables, but not yet Optuna's version row and alembic stamp
    engine = sqlalchemy.create_engine(f"sqlite:///{half}")
    from optuna.storages._rdb import models

    models.BaseModel.metadata.create_all(engine)
    engine.dispose()
    with contextlib.closing(sqlite3.connect(half)) as conn:
        before = list(conn.iterdump())
    for args in READERS:
        assert main([*args, "--storage", f"sqlite:///{half}"]) == 2, args
    err = capsys.readouterr().err.splitlines()
    assert len(err) == len(READERS) and all("is still being created" in line for line in err), err
    with contextlib.closing(sqlite3.connect(half)) as conn:
        assert list(conn.iterdump()) == before, "a read command wrote to a half-created store"


_CREATE = """
import sys
from genft_search import store
import optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
rdb = store.open_storage(sys.argv[1])
optuna.create_study(study_name="made/a", storage=rdb)
"""


def test_readers_do_not_race_a_runner_creating_a_new_sqlite_store(tmp_path):
    """A reader polling while a runner creates the store sees "no store", "being created" or the store,
    never another error, and never does Optuna's creation steps itself."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    creator = subprocess.Popen([sys.executable, "-c", _CREATE, url])
    seen: set[str] = set()
    try:
        while True:
            done = creator.poll() is not None
            try:
                rdb = store.open_storage(url, create=False)
                names = store.study_names(rdb)
                rdb.engine.dispose()
                seen.add("opened")
                if names == ["made/a"]:
                    break
            except UserError as exc:
                text = str(exc)
                assert "no study store" in text or "is still being created" in text, text
                seen.add("missing" if "no study store" in text else "partial")
            if done and "opened" in seen:
                break
            assert not (done and creator.returncode != 0), "the runner failed to create its store"
    finally:
        creator.wait(timeout=120)
    assert creator.returncode == 0 and "opened" in seen and "missing" in seen
    rdb = store.open_storage(url, create=False)
    assert store.study_names(rdb) == ["made/a"]
    assert {"alembic_version", "version_info", "studies"} <= set(_tables(url))
