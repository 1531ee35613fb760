"""Fixtures shared by the engine tests: study stores (SQLite, PostgreSQL), study files, Ray, the CLI.

``tests`` is a package, so test modules are ``tests.<path>`` and never shadow the project's own
packages (``tests/trainables`` mirrors ``trainables``). The repository root goes on ``PYTHONPATH`` so
that Ray workers and CLI subprocesses can import ``tests.support.toy_trainable``.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.support.engine import PG_DB, PG_HOST, PG_PORT  # noqa: E402  (after sys.path is set)


@pytest.fixture
def write_study(tmp_path: Path) -> Callable[..., Path]:
    """Write a study document (dict or YAML text) to a file under ``tmp_path``; returns its path."""

    def write(doc: dict[str, Any] | str, filename: str = "study.yaml") -> Path:
        path = tmp_path / filename
        path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
        return path

    return write


@pytest.fixture
def unique_name() -> str:
    """A study name no other test run uses (PostgreSQL is shared between runs)."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


def _pg_url() -> str | None:
    import sqlalchemy

    for user in ("postgres", "root"):
        url = f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{PG_DB}"
        engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT 1"))
            return url
        except Exception:
            continue
        finally:
            engine.dispose()
    return None


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """The PostgreSQL test database; required in CI (``CI=true``), skipped with a reason elsewhere."""
    url = _pg_url()
    if url is None:
        message = (f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} "
                   f"(database {PG_DB!r}, user postgres/root)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}; CI requires it", pytrace=False)
        pytest.skip(message)
    return url


@pytest.fixture
def pg_url(pg_base_url: str, unique_name: str) -> Iterator[str]:
    """The PostgreSQL URL; studies whose names start with ``unique_name`` are deleted afterwards."""
    yield pg_base_url
    import optuna

    try:
        storage = optuna.storages.RDBStorage(pg_base_url)
        for summary in storage.get_all_studies():
            if summary.study_name.startswith(unique_name):
                storage.delete_study(summary._study_id)
        storage.engine.dispose()
    except Exception:  # cleanup must not hide the test's own result
        pass


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """One local Ray instance per test module (what ``run_study`` reuses when it is already up)."""
    import ray

    from genft_search.tune import ensure_ray

    started = ensure_ray(None)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def builtin_assets() -> dict[str, Path]:
    """The built-in offline assets (dSprites, MNIST ViT), built once into ``$GENFT_HOME``."""
    from trainables import assets

    return assets.prepare(None)


