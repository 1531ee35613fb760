"""The study store: Optuna's RDB storage, opened safely, plus what a resumable service needs on top.

Everything that touches the database goes through here: URL resolution and redaction, SQLite in WAL
mode with a busy timeout (one writer, concurrent readers), PostgreSQL schema creation under an
advisory lock (several runners may start at once), a per-study lock so parallel runners never
overshoot ``n_trials``, runner heartbeats, and recovery of trials orphaned by a dead runner.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn, Protocol

import optuna
from optuna._typing import JSONSerializable
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

from genft_search.errors import StoreUnavailable, UserError

__all__ = [
    "ATTR_BUDGET",
    "ATTR_CONFIG",
    "ATTR_COST",
    "ATTR_FAIL_REASON",
    "ATTR_MAX_BUDGET",
    "ATTR_METRICS",
    "ATTR_ORPHANED",
    "ATTR_PRIOR_SOURCE",
    "ATTR_REQUEUED",
    "ATTR_RESUMED_FROM_EPOCH",
    "ATTR_RETRY_OF",
    "ATTR_SAMPLER_SEED",
    "ATTR_TRAIN_SECONDS",
    "ATTR_WARM_START",
    "DEFAULT_STORAGE",
    "MAX_RETRIES",
    "STORAGE_ENV",
    "STORE_RETRY_ENV",
    "Heartbeat",
    "ReadOnlyStorage",
    "Runner",
    "StudyLike",
    "StudyRecord",
    "best_trials",
    "cost_of",
    "cost_summary",
    "counted_trials",
    "db_now",
    "describe_storage",
    "find_studies",
    "find_study",
    "fresh_trial",
    "give_up_trial",
    "open_storage",
    "probe_storage",
    "recover_stale_trials",
    "redact_text",
    "redact_url",
    "register_run",
    "resolve_storage_url",
    "retry_chain",
    "retrying",
    "state_counts",
    "store_late_result",
    "store_retry_window",
    "study_cost",
    "study_lock",
    "study_names",
    "tag_prior_source",
    "tag_runner",
    "trial_config",
    "trial_records",
    "write_trial",
]

DEFAULT_STORAGE = "sqlite:///genft_studies.db"
STORAGE_ENV = "GENFT_STORAGE"
SQLITE_BUSY_TIMEOUT_S = 60.0
#: a runner on another host is presumed dead when its heartbeat is older than this, on the database's clock
HEARTBEAT_GRACE_S = 120.0
HEARTBEAT_INTERVAL_S = 15.0
#: how often a point whose runner died is tried again before the study moves on to a fresh point
MAX_RETRIES = 2
#: seconds a transient store error (refused, reset, server closed) is retried before the runner gives up
STORE_RETRY_ENV = "GENFT_STORE_RETRY_S"
DEFAULT_STORE_RETRY_S = 300.0
#: seconds a runner waits for the study lock before it says who holds it
LOCK_TIMEOUT_S = 300.0

# attribute keys (system attrs are invisible in the dashboard; user attrs are shown). The study's own
# user attrs are the fields of :class:`StudyRecord`; these are the per-trial ones and the runner's.
ATTR_RUNNER = "genft:runner"
ATTR_HEARTBEAT = "genft:heartbeat:"
ATTR_FIRST_SEEN = "genft:unowned_since"
ATTR_SAMPLER_SEED = "genft:sampler_seed"
ATTR_RUNS = "genft:runs"
ATTR_FINGERPRINT = "space_fingerprint"
ATTR_SPACE = "space"
ATTR_METHOD = "method"
ATTR_CONFIG = "config"
ATTR_FAIL_REASON = "fail_reason"
ATTR_REQUEUED = "requeued"
#: a FAIL that is not the trial's fault (its runner died or stopped): it never counts towards n_trials
ATTR_ORPHANED = "orphaned"
ATTR_RETRY_OF = "retry_of"
ATTR_RESUMED_FROM_EPOCH = "resumed_from_epoch"
ATTR_BUDGET = "budget"
ATTR_MAX_BUDGET = "max_budget"
ATTR_METRICS = "metrics"
ATTR_TRAIN_SECONDS = "train_seconds"
ATTR_WARM_START = "warm_start"
ATTR_COST = "cost"
#: what a trainable may report about its own cost; copied from its last report into the trial's cost
COST_METRICS = ("peak_gpu_memory_mb", "peak_rss_mb", "examples_per_second", "trainable_params")
#: which source of the prior-guided sampler proposed a trial (``prior``, ``incumbent``, ``base``, ...)
ATTR_PRIOR_SOURCE = "genft:prior_source"


class StudyLike(Protocol):
    """What :meth:`StudyRecord.read` needs: a ``Study``, a ``StudySummary`` or a storage's ``FrozenStudy``."""

    @property
    def study_name(self) -> str: ...

    @property
    def user_attrs(self) -> dict[str, Any]: ...


@dataclass
class StudyRecord:
    """What genft-search keeps on each Optuna study, as its user attrs (so optuna-dashboard shows them).

    The one place that names them: the engine writes a record when it creates or resumes a study,
    reports, tables and the CLI read it back. Studies made by hand (plain Optuna) read as a record with
    the task and study file taken from the ``<file>/<task>`` name.
    """

    task: str | None = None
    study_file: str | None = None
    method: str | None = None
    protocol: str | None = None
    #: the base trial config every trial starts from (trial params go on top)
    config: dict[str, Any] = field(default_factory=dict)
    objective: list[dict[str, Any]] = field(default_factory=list)
    n_trials: int | None = None
    space_fingerprint: str | None = None
    #: ``SearchSpace.describe()`` of the space the fingerprint was taken of
    space: dict[str, Any] | None = None
    warm_started: bool = False
    #: an ablation's description (base, variants, seeds, setting); None for searches
    ablation: dict[str, Any] | None = None
    #: ``{"trial": n, "metrics": {...}}`` of ``genft-search best --evaluate-test`` (one seed)
    test_evaluation: dict[str, Any] | None = None
    #: ``[{"seed": s, "trial": n, "metrics": {...}}, ...]`` of ``best --evaluate-test --seeds N``
    test_evaluations: list[dict[str, Any]] = field(default_factory=list)
    #: the Ray resources each trial holds, ``{"cpu": c, "gpu": g}`` (what device-seconds multiply by)
    resources: dict[str, float] | None = None
    #: ``{"n_trials": .., "timeout": .., "device_hours": ..}`` of the file the study last ran with
    budget: dict[str, Any] | None = None

    @classmethod
    def read(cls, study: StudyLike) -> StudyRecord:
        """The record of a study, a study summary or a frozen study (anything with its name and attrs)."""
        attrs = study.user_attrs
        record = cls(**{f.name: attrs[f.name] for f in fields(cls) if f.name in attrs})
        head, _, tail = study.study_name.rpartition("/")
        record.task = record.task or (tail if head else None)
        record.study_file = record.study_file or head or study.study_name
        return record

    def write(self, study: optuna.Study, *names: str) -> None:
        """Store the ``names`` fields (every field that is set when none are named); unchanged ones are
        not written again."""
        current = study.user_attrs
        for f in fields(self):
            value = getattr(self, f.name)
            if (names and f.name not in names) or (not names and value in (None, {}, [], False)):
                continue
            if current.get(f.name) != value:
                study.set_user_attr(f.name, value)


# ---------------------------------------------------------------------------------------------------
# URLs


def resolve_storage_url(cli: str | None = None, file: str | None = None) -> str:
    """The storage to use: ``--storage``, else the study file's ``storage``, else ``$GENFT_STORAGE``,
    else ``sqlite:///genft_studies.db``."""
    for candidate in (cli, file, os.environ.get(STORAGE_ENV)):
        if candidate and candidate.strip():
            return candidate.strip()
    return DEFAULT_STORAGE


#: query keys whose values are secrets (libpq's ``password``, ``passfile``, ``sslpassword``)
SECRET_QUERY_KEYS = ("password", "passfile", "sslpassword")
_SECRET_QUERY = re.compile(r"([?&](?:" + "|".join(SECRET_QUERY_KEYS) + r")=)([^&#]*)", re.IGNORECASE)


def _userinfo_span(url: str) -> tuple[int, int] | None:
    """Where the password of ``url``'s userinfo is (``scheme://user:PASSWORD@host``), or None.

    The userinfo ends at the *last* ``@`` before the query, so a password holding ``@`` (or ``/``) is
    covered whole, not split at its first ``@`` as URL parsers do.
    """
    scheme_end = url.find("://")
    if scheme_end < 0:
        return None
    start = scheme_end + 3
    head_end = len(url)
    for mark in ("?", "#"):
        found = url.find(mark, start)
        if found >= 0:
            head_end = min(head_end, found)
    if url.startswith("/", start):  # sqlite:///path: no authority
        return None
    at = url.rfind("@", start, head_end)
    if at < 0:
        return None
    colon = url.find(":", start, at)
    if colon < 0:
        return None
    return colon + 1, at


def redact_url(url: str) -> str:
    """``url`` with every secret replaced by ``***``: the userinfo password (whole, even when it holds
    ``@``) and the values of ``password``, ``passfile`` and ``sslpassword`` query keys.

    The one redaction of the project: messages, logs, ``validate`` and reports all go through it (or
    :func:`redact_text` for free text that may quote the URL).
    """
    url = str(url)
    span = _userinfo_span(url)
    if span is not None:
        url = url[:span[0]] + "***" + url[span[1]:]
    return _SECRET_QUERY.sub(lambda m: m.group(1) + "***", url)


def _url_secrets(url: str) -> list[str]:
    """The secret strings of ``url`` (raw and percent-decoded), longest first, for :func:`redact_text`."""
    from urllib.parse import unquote

    url = str(url)
    found: list[str] = []
    span = _userinfo_span(url)
    if span is not None:
        found.append(url[span[0]:span[1]])
    found += [m.group(2) for m in _SECRET_QUERY.finditer(url)]
    out = {v for s in found if s for v in (s, unquote(s), unquote(s.replace("+", " "))) if v}
    return sorted(out, key=len, reverse=True)


def redact_text(text: str, url: str) -> str:
    """``text`` with ``url``'s secrets removed (driver messages and tracebacks sometimes echo the DSN)."""
    text = str(text)
    for secret in _url_secrets(url):
        text = text.replace(secret, "***")
    return _SECRET_QUERY.sub(lambda m: m.group(1) + "***", text)


def describe_storage(url: str) -> str:
    """The backend and host of a store, for reports (``postgresql on db:5432/genft``,
    ``sqlite file genft_studies.db``): no user name, no password, no query."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(redact_url(_normalise(url)))
        backend = parsed.get_backend_name()
    except Exception:
        return "an SQL study store"
    if backend == "sqlite":
        path = _sqlite_path(url)
        return f"sqlite file {path.name}" if path is not None else "sqlite"
    where = parsed.host or "localhost"
    if parsed.port:
        where += f":{parsed.port}"
    return f"{backend} on {where}" + (f"/{parsed.database}" if parsed.database else "")


def _scrub(text: str, url: str) -> str:
    """One line of a driver message with ``url``'s secrets removed."""
    return redact_text(" ".join(str(text).split()), url)


def _normalise(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (the driver this project installs), and percent-encode a
    password holding ``@`` (URL parsers split it at its first ``@`` and take the rest for the host)."""
    from urllib.parse import quote

    span = _userinfo_span(url)
    if span is not None and "@" in url[span[0]:span[1]]:
        url = url[:span[0]] + quote(url[span[0]:span[1]], safe="") + url[span[1]:]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if _sqlite_in_memory(database, url) or database.startswith("file:"):
        return None
    return Path(database)


def _sqlite_in_memory(database: str, url: str) -> bool:
    return database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in url


def _writable_folder(folder: Path) -> bool:
    """Whether files can be made in ``folder`` (tried for real: ``os.access`` says yes to root even on a
    read-only mount); the probe file is removed at once."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".genft-probe-")
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return True


def _check_sqlite(url: str, shown: str, source: str, *, write: bool) -> Path | None:
    """The SQLite file of ``url``, refusing what would lose the study: an in-memory database, a missing
    folder and (``write``) a folder this user cannot write, where SQLite cannot keep its journal."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database or ""
    if _sqlite_in_memory(database, url):
        raise UserError(f"{source}: {shown} is an in-memory SQLite database, which is gone when the "
                        f"process ends; expected a file, e.g. sqlite:///genft_studies.db")
    path = _sqlite_path(url)
    if path is None:
        return None
    if not path.parent.is_dir():
        raise UserError(f"{source}: folder {path.parent} of {shown} does not exist; "
                        f"expected an existing folder")
    if write and not _writable_folder(path.parent):
        raise UserError(f"{source}: folder {path.parent} of {shown} is not writable; expected a folder "
                        f"this user can create files in (SQLite keeps its journal beside the store)")
    return path


def _schema_state(url: str, engine_kwargs: dict[str, Any]) -> str:
    """``missing`` (no Optuna tables), ``partial`` (a runner is creating them) or ``complete``; reads only.

    Optuna creates the tables, then its version row, then stamps alembic last; a store is complete once
    that stamp is there, and only then may a reader open it without Optuna finishing the job (DDL).
    """
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        with engine.connect() as conn:
            inspector = sqlalchemy.inspect(conn)
            if not inspector.has_table("studies"):
                return "missing"
            for table in ("version_info", "alembic_version"):
                if not inspector.has_table(table):
                    return "partial"
                if not conn.execute(sqlalchemy.text(f"SELECT COUNT(*) FROM {table}")).scalar():
                    return "partial"
            return "complete"
    finally:
        engine.dispose()


def _cannot_open(exc: BaseException, url: str, shown: str, source: str) -> UserError:
    reason = getattr(exc, "orig", None) or exc
    text = str(reason).strip()
    first = _scrub(text.splitlines()[0] if text else type(reason).__name__, url)
    return UserError(f"{source}: cannot open the study store {shown}: {first}")


# ---------------------------------------------------------------------------------------------------
# opening

#: libpq settings of every PostgreSQL connection: a dead server or network is noticed within seconds
#: (keepalives, ``tcp_user_timeout`` in ms) instead of a call hanging on a half-open socket
_PG_CONNECT_ARGS: dict[str, Any] = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 10,
                                    "keepalives_interval": 5, "keepalives_count": 3,
                                    "tcp_user_timeout": 30000}


def open_storage(url: str, *, create: bool = True, source: str = "storage") -> RDBStorage:
    """Open (and with ``create`` make) the study store at ``url``.

    SQLite files are switched to WAL with a busy timeout so readers never block the runner. With
    ``create=False`` (the read commands) nothing is written: a missing store, or one a runner is still
    creating, is an error instead of an empty new store, and Optuna's table creation is skipped.
    PostgreSQL schema creation runs under an advisory lock, so runners starting together do not race.

    Args:
        url: an SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``).
        create: create the file and schema if missing (``run``); readers pass False.
        source: what the message names as the URL's origin (``storage``, ``--storage``, a study file).

    Returns:
        Optuna's RDB storage on ``url``.

    Raises:
        UserError: not a database URL, an unsupported database, an in-memory or unwritable SQLite store,
            a missing or half-created store (``create=False``) or an unreachable server; one line, the
            URL's secrets redacted.
    """
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    url = _normalise(url)
    shown = redact_url(url)
    try:
        backend = make_url(url).get_backend_name()
    except Exception:
        raise UserError(
            f"{source}: {shown!r} is not a database URL; expected e.g. sqlite:///genft_studies.db or "
            "postgresql+psycopg://user@host/db"
        ) from None
    if backend not in ("sqlite", "postgresql", "mysql"):
        raise UserError(f"{source}: unsupported database {backend!r} in {shown}; expected sqlite or "
                        f"postgresql")
    engine_kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        path = _check_sqlite(url, shown, source, write=create)
        if path is not None:
            if not path.exists() and not create:
                raise UserError(f"{source}: no study store at {shown}; expected an existing SQLite file")
            if create:
                _enable_wal(path, shown, source)
    else:
        engine_kwargs = {"pool_pre_ping": True}
        if backend == "postgresql":
            engine_kwargs["connect_args"] = dict(_PG_CONNECT_ARGS)
    try:
        if not create:
            state = _schema_state(url, engine_kwargs)
            if state == "missing":
                raise UserError(f"{source}: no study store at {shown}; expected a store that "
                                f"genft-search run has created")
            if state == "partial":
                raise UserError(f"{source}: the study store {shown} is still being created (or is not "
                                f"a complete Optuna store); expected a store whose run has started: try "
                                f"again in a moment")
            return RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=True)
        if backend == "postgresql":
            with _pg_schema_lock(url, engine_kwargs):
                return RDBStorage(url, engine_kwargs=engine_kwargs)
        if path is not None and create:
            with _file_lock(f"{path.resolve()}::schema"):  # runners creating one new file together
                return RDBStorage(url, engine_kwargs=engine_kwargs)
        return RDBStorage(url, engine_kwargs=engine_kwargs)
    except (sa_exc.SQLAlchemyError, ImportError, OSError, RuntimeError) as exc:
        raise _cannot_open(exc, url, shown, source) from None


def probe_storage(url: str, source: str = "storage") -> RDBStorage | None:
    """Check that the store at ``url`` is reachable and usable by a run, without writing to it.

    Returns the opened storage when it already holds a complete Optuna schema (so existing studies can
    be checked), None when it is reachable but empty, being created, or not created yet; ``UserError``
    otherwise (in-memory or unwritable SQLite included).
    """
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    url = _normalise(url)
    shown = redact_url(url)
    try:
        backend = make_url(url).get_backend_name()
    except Exception:
        raise UserError(f"{source}: {shown!r} is not a database URL; expected e.g. "
                        f"sqlite:///genft_studies.db") from None
    engine_kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        path = _check_sqlite(url, shown, source, write=True)
        if path is not None and not path.exists():
            return None
    elif backend not in ("postgresql", "mysql"):
        raise UserError(f"{source}: unsupported database {backend!r} in {shown}; expected sqlite or "
                        f"postgresql")
    elif backend == "postgresql":
        engine_kwargs = {"connect_args": {"connect_timeout": 10}}
    try:
        state = _schema_state(url, engine_kwargs)
    except (sa_exc.SQLAlchemyError, ImportError, OSError) as exc:
        raise _cannot_open(exc, url, shown, source) from None
    if state != "complete":
        return None
    return open_storage(url, create=False, source=source)


def _enable_wal(path: Path, shown: str, source: str) -> None:
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(str(path), timeout=SQLITE_BUSY_TIMEOUT_S)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise UserError(f"{source}: cannot open the study store {shown}: {exc}") from None


@contextlib.contextmanager
def _pg_schema_lock(url: str, engine_kwargs: dict[str, Any]) -> Iterator[None]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        key = {"k": _lock_key("genft:schema")}
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), key)
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), key)
                conn.commit()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _file_lock(name: str) -> Iterator[None]:
    digest = hashlib.sha256(name.encode()).hexdigest()[:24]
    lock_dir = Path(tempfile.gettempdir()) / "genft-search-locks"
    lock_dir.mkdir(exist_ok=True)
    with open(lock_dir / f"{digest}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _lock_timeout() -> float:
    return _env_seconds("GENFT_LOCK_TIMEOUT_S", LOCK_TIMEOUT_S)


@contextlib.contextmanager
def study_lock(target: optuna.Study | RDBStorage, study_name: str | None = None,
               timeout: float | None = None) -> Iterator[None]:
    """Serialise "count, then ask" across runners of one study (PostgreSQL advisory lock, or a file lock
    beside SQLite), so several runners stop at exactly ``n_trials``.

    ``target`` is the study itself, or a storage with the study's name. Waiting longer than ``timeout``
    seconds (``$GENFT_LOCK_TIMEOUT_S``, default 300) raises :class:`StoreUnavailable` naming the holder.
    """
    import sqlalchemy

    found: Any = target
    if isinstance(target, optuna.Study):
        found, study_name = target._storage, target.study_name
    assert study_name is not None, "study_lock(storage, study_name) needs the study's name"
    storage: Any = getattr(found, "_backend", found)  # a study's storage is a cache around the RDB one
    dialect = storage.engine.dialect.name
    deadline = time.monotonic() + (_lock_timeout() if timeout is None else timeout)
    if dialect == "postgresql":
        key = _lock_key(f"genft:study:{study_name}")
        with retrying(storage.engine.connect, storage=storage) as conn:
            delay = 0.02
            while not conn.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() >= deadline:
                    holder = conn.execute(sqlalchemy.text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND classid = :c AND objid = :o"),
                        {"c": (key >> 32) & 0xFFFFFFFF, "o": key & 0xFFFFFFFF}).scalar()
                    conn.rollback()
                    raise StoreUnavailable(
                        f"storage: the study lock of {study_name!r} has been held by another session "
                        f"(PostgreSQL backend pid {holder}) for more than {_lock_wait(timeout):g} s; "
                        "expected it to be free: end that session (pg_terminate_backend) or run again")
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # a lost connection has released the lock already
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
        return
    path = _sqlite_path(storage.url) if dialect == "sqlite" else None
    if path is None:
        yield
        return
    digest = hashlib.sha256(f"{path.resolve()}::{study_name}".encode()).hexdigest()[:24]
    lock_dir = Path(tempfile.gettempdir()) / "genft-search-locks"
    lock_dir.mkdir(exist_ok=True)
    with open(lock_dir / f"{digest}.lock", "a") as handle:
        delay = 0.02
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(
                        f"storage: the study lock of {study_name!r} ({handle.name}) has been held by "
                        f"another process for more than {_lock_wait(timeout):g} s; expected it to be "
                        "free: end that runner or run again") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_wait(timeout: float | None) -> float:
    return _lock_timeout() if timeout is None else timeout


# ---------------------------------------------------------------------------------------------------
# transient errors


def _env_seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise UserError(f"${name}: {text!r} is not a number of seconds; expected a number >= 0, e.g. 300")
    return value


def store_retry_window() -> float:
    """Seconds a transient store error is retried before the runner gives up (``$GENFT_STORE_RETRY_S``,
    default 300)."""
    return _env_seconds(STORE_RETRY_ENV, DEFAULT_STORE_RETRY_S)


def _is_transient(exc: BaseException) -> bool:
    """A store error that a later attempt may not have: refused, reset or closed connections, timeouts,
    SQLite's "database is locked" (Optuna wraps them all as ``StorageInternalError``)."""
    from sqlalchemy import exc as sa_exc

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                                sa_exc.TimeoutError, ConnectionError, TimeoutError)):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        kind = type(current)
        if kind.__module__.startswith("psycopg") and kind.__name__ in ("OperationalError", "InterfaceError"):
            return True
        current = current.__cause__ or current.__context__
    return False


def _reason(exc: BaseException) -> str:
    current: BaseException = exc
    while (current.__cause__ or current.__context__) is not None and not str(current).strip():
        current = current.__cause__ or current.__context__  # type: ignore[assignment]
    orig = getattr(current, "orig", None) or current.__cause__ or current
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def retrying(call: Any, *args: Any, storage: Any = None, window: float | None = None, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, retried with back-off (0.5 s doubling to 10 s) while it fails with a
    transient store error, for up to ``window`` seconds (:func:`store_retry_window`). ``storage`` (the
    storage or a study on it) names the store in the error.

    Raises:
        StoreUnavailable: the store stayed away for the whole window (one line, password redacted).
    """
    window = store_retry_window() if window is None else window
    first: float | None = None
    delay = 0.5
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            if not _is_transient(exc):
                raise
            now = time.monotonic()
            first = now if first is None else first
            left = first + window - now
            if left <= 0:
                target = getattr(storage, "_storage", storage)  # a study, or its storage
                url = str(getattr(getattr(target, "_backend", target), "url", "") or "")
                where = f" {redact_url(url)}" if url else ""
                raise StoreUnavailable(
                    f"storage: the study store{where} has been unreachable for {window:g} s "
                    f"({_scrub(_reason(exc), url)}); every result stored so far is kept: run the same "
                    f"command again when it is back (${STORE_RETRY_ENV} sets the wait)") from None
            time.sleep(min(delay, left))
            delay = min(delay * 2, 10.0)


def db_now(target: Any) -> float:
    """The database server's clock, in seconds since the epoch: the one clock every runner shares."""
    import sqlalchemy

    storage: Any = getattr(target, "_storage", target)
    storage = getattr(storage, "_backend", storage)
    dialect = storage.engine.dialect.name
    sql = {"postgresql": "SELECT EXTRACT(EPOCH FROM clock_timestamp())",
           "mysql": "SELECT UNIX_TIMESTAMP(NOW(6))"}.get(
        dialect, "SELECT (julianday('now') - 2440587.5) * 86400.0")
    with storage.engine.connect() as conn:
        return float(conn.execute(sqlalchemy.text(sql)).scalar())

class ReadOnlyStorage(BaseStorage):
    """Reads through to ``storage`` and refuses every write, so a viewer (``genft-search dashboard``)
    cannot delete, rename or tell anything in the study.

    ``refuse`` builds the exception a write raises from a one-line reason (the dashboard makes it an
    HTTP 403); a ``PermissionError`` by default.
    """

    def __init__(self, storage: BaseStorage,
                 refuse: Callable[[str], Exception] | None = None) -> None:
        self._storage = storage
        self._refuse = refuse or PermissionError

    def _write(self, what: str) -> NoReturn:
        raise self._refuse(f"the study store is read-only here ({what} refused); restart with "
                           f"--allow-writes to change it")

    # writes: all refused
    def create_new_study(self, directions: Sequence[StudyDirection],
                         study_name: str | None = None) -> int:
        self._write("create a study")

    def delete_study(self, study_id: int) -> None:
        self._write("delete a study")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._write("set a study attribute")

    def set_study_system_attr(self, study_id: int, key: str, value: JSONSerializable) -> None:
        self._write("set a study attribute")

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        self._write("create a trial")

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        self._write("set a trial parameter")

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        self._write("tell a trial")

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self._write("report a value")

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._write("set a trial attribute")

    def set_trial_system_attr(self, trial_id: int, key: str, value: JSONSerializable) -> None:
        self._write("set a trial attribute")

    # reads: the wrapped storage's
    def get_study_id_from_name(self, study_name: str) -> int:
        return self._storage.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._storage.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._storage.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._storage.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._storage.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._storage.get_all_studies()

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self._storage.get_trial_number_from_id(trial_id)

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        return self._storage.get_trial_param(trial_id, param_name)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._storage.get_trial(trial_id)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._storage.get_all_trials(study_id, deepcopy=deepcopy, states=states)

    def get_n_trials(self, study_id: int,
                     state: tuple[TrialState, ...] | TrialState | None = None) -> int:
        return self._storage.get_n_trials(study_id, state)

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self._storage.get_best_trial(study_id)

    def remove_session(self) -> None:
        self._storage.remove_session()


# ---------------------------------------------------------------------------------------------------
# runners and stale trials


def _hostname() -> str:
    return socket.gethostname()


@dataclass(frozen=True)
class Runner:
    """The process that asks and tells trials; its id is stored on every trial it starts."""

    host: str
    pid: int
    started: float

    @property
    def id(self) -> str:
        return f"{self.host}:{self.pid}:{self.started:.2f}"

    @classmethod
    def current(cls) -> Runner:
        return cls(_hostname(), os.getpid(), _process_start(os.getpid()) or time.time())

    @classmethod
    def parse(cls, text: str) -> Runner | None:
        try:
            host, pid, started = str(text).rsplit(":", 2)
            return cls(host, int(pid), float(started))
        except ValueError:
            return None

    def alive_locally(self) -> bool | None:
        """On this host: whether the process still runs (pid and start time match); elsewhere None."""
        if self.host != _hostname():
            return None
        started = _process_start(self.pid)
        return started is not None and abs(started - self.started) < 0.05


def _process_start(pid: int) -> float | None:
    try:
        import psutil

        return round(psutil.Process(pid).create_time(), 2)
    except Exception:
        return None


def tag_runner(study: optuna.Study, trial: optuna.Trial, runner: Runner, seed: int | None = None) -> None:
    """Record which runner owns ``trial`` (stale-trial recovery reads it) and the sampler seed it drew
    the trial with (system attrs)."""
    study._storage.set_trial_system_attr(trial._trial_id, ATTR_RUNNER, runner.id)
    if seed is not None:
        study._storage.set_trial_system_attr(trial._trial_id, ATTR_SAMPLER_SEED, seed)


def tag_prior_source(study: optuna.Study, trial: FrozenTrial, source: str) -> None:
    """Record which source of the prior-guided sampler proposed ``trial`` (a system attr; the sampler
    rebuilds its mix from these on resume)."""
    study._storage.set_trial_system_attr(trial._trial_id, ATTR_PRIOR_SOURCE, source)


class Heartbeat:
    """Writes this runner's heartbeat into each study it works on, from a daemon thread.

    The beat is the database server's time (:func:`db_now`), and staleness is judged against it, so
    runners whose clocks disagree never take each other for dead. A beat that cannot reach the store is
    tried again at the next interval.
    """

    def __init__(self, study: optuna.Study, runner: Runner, interval: float = HEARTBEAT_INTERVAL_S) -> None:
        self._study, self._runner, self._interval = study, runner, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="genft-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        retrying(self.beat, storage=self._study._storage)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def beat(self) -> None:
        self._study._storage.set_study_system_attr(
            self._study._study_id, ATTR_HEARTBEAT + self._runner.id, db_now(self._study)
        )

    def _loop(self) -> None:
        wait = self._interval
        while not self._stop.wait(wait):
            try:
                self.beat()
                wait = self._interval
            except Exception:
                wait = min(self._interval, 2.0)  # the store is away: try again soon


def _runner_alive(runner_id: str | None, heartbeats: Mapping[str, Any], now: float, grace: float) -> bool:
    if runner_id is None:
        return False
    runner = Runner.parse(runner_id)
    if runner is not None:
        local = runner.alive_locally()
        if local is not None:
            return local
    beat = heartbeats.get(ATTR_HEARTBEAT + runner_id)
    return isinstance(beat, (int, float)) and now - float(beat) < grace


def register_run(study: optuna.Study, runner: Runner) -> int:
    """Count one more run of ``study`` and return how many started before it (0 for the first).

    Call it under :func:`study_lock`: concurrent runners get different numbers, and a resumed study a
    new one, which is what their sampler seeds are derived from.
    """
    storage = study._storage
    runs = storage.get_study_system_attrs(study._study_id).get(ATTR_RUNS)
    index = int(runs) if isinstance(runs, int) else 0
    storage.set_study_system_attr(study._study_id, ATTR_RUNS, index + 1)
    return index


def _retry_depth(trial: FrozenTrial, by_number: Mapping[int, FrozenTrial]) -> int:
    depth, seen = 0, {trial.number}
    origin = trial.user_attrs.get(ATTR_RETRY_OF)
    while isinstance(origin, int) and origin not in seen:
        depth += 1
        seen.add(origin)
        parent = by_number.get(origin)
        origin = parent.user_attrs.get(ATTR_RETRY_OF) if parent is not None else None
    return depth


def give_up_trial(study: optuna.Study, trial: FrozenTrial, reason: str,
                  trials: list[FrozenTrial] | None = None, always: bool = False) -> bool:
    """FAIL a trial that its runner could not finish (died, interrupted, out of time): not the trial's
    fault, so it never counts towards ``n_trials``; its point is enqueued again up to
    :data:`MAX_RETRIES` times (``always``: however often, e.g. when a budget cut it), then the study
    moves on to a fresh point.

    Returns False (and changes nothing) when the trial was already finished, by its owner or another
    runner: the caller re-checks ownership this way before giving a trial up.
    """
    storage = study._storage
    trials = trials if trials is not None else study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    requeue = always or _retry_depth(trial, by_number) < MAX_RETRIES
    try:
        if getattr(storage, "_backend", storage).get_trial(trial._trial_id).state.is_finished():
            return False
        storage.set_trial_user_attr(trial._trial_id, ATTR_FAIL_REASON, reason[:1000])
        storage.set_trial_user_attr(trial._trial_id, ATTR_ORPHANED, True)
        storage.set_trial_user_attr(trial._trial_id, ATTR_REQUEUED, requeue)
        if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            return False
    except UpdateFinishedTrialError:
        return False  # finished meanwhile (its owner told it, or another runner recovered it)
    if requeue:
        study.enqueue_trial(dict(trial.params), user_attrs={ATTR_RETRY_OF: trial.number})
    return True


def recover_stale_trials(study: optuna.Study, grace: float = HEARTBEAT_GRACE_S,
                         keep: Runner | None = None) -> list[int]:
    """Give up trials left RUNNING by a dead runner (:func:`give_up_trial`). Returns their numbers.

    Call it under :func:`study_lock`. A runner on this host is dead when its process is gone; one
    elsewhere when its heartbeat is older than ``grace`` seconds on the database's clock; a RUNNING
    trial no runner claims is stale ``grace`` seconds after it was first seen so. Each verdict is
    checked again on a fresh read just before the trial is given up. ``keep``'s trials are never taken.
    """
    storage = study._storage
    rdb: Any = getattr(storage, "_backend", storage)
    running = [t for t in rdb.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,))
               if keep is None or t.system_attrs.get(ATTR_RUNNER) != keep.id]
    if not running:
        return []
    heartbeats = storage.get_study_system_attrs(study._study_id)
    now = db_now(study)
    trials: list[FrozenTrial] | None = None
    recovered = []
    for trial in running:
        runner_id = trial.system_attrs.get(ATTR_RUNNER)
        if runner_id is None:
            # not started by genft-search (or killed between ask and tag): stale once unowned that long
            since = trial.system_attrs.get(ATTR_FIRST_SEEN)
            if not isinstance(since, (int, float)):
                with contextlib.suppress(UpdateFinishedTrialError):
                    storage.set_trial_system_attr(trial._trial_id, ATTR_FIRST_SEEN, now)
                continue
            if now - float(since) < grace:
                continue
        elif _runner_alive(runner_id, heartbeats, now, grace):
            continue
        else:  # the owner may have beaten since the first read: look again before taking its trial
            fresh = storage.get_study_system_attrs(study._study_id)
            if _runner_alive(runner_id, fresh, db_now(study), grace):
                continue
        if trials is None:
            trials = rdb.get_all_trials(study._study_id, deepcopy=False)
        reason = f"runner {runner_id or '(unknown)'} died while the trial was RUNNING"
        if give_up_trial(study, trial, reason, trials):
            recovered.append(trial.number)
    return recovered


def fresh_trial(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> FrozenTrial:
    """``trial`` as the store holds it now (never a cached copy): another runner may have changed it."""
    rdb: Any = getattr(study._storage, "_backend", study._storage)
    found: FrozenTrial = rdb.get_trial(trial._trial_id)
    return found


def write_trial(study: optuna.Study, trial: optuna.Trial | FrozenTrial,
                user_attrs: Mapping[str, Any] | None = None,
                intermediate_values: Mapping[int, float] | None = None) -> None:
    """Set user attrs and intermediate values of a running trial straight in the store (idempotent, so
    a write an outage interrupted can simply be repeated)."""
    rdb: Any = getattr(study._storage, "_backend", study._storage)
    for key, value in (user_attrs or {}).items():
        rdb.set_trial_user_attr(trial._trial_id, key, value)
    for step, number in (intermediate_values or {}).items():
        rdb.set_trial_intermediate_value(trial._trial_id, step, number)


def store_late_result(study: optuna.Study, trial: optuna.Trial | FrozenTrial, state: TrialState,
                      values: list[float] | None,
                      user_attrs: Mapping[str, Any], intermediate_values: Mapping[int, float],
                      runner: Runner, n_trials: int) -> str:
    """Keep the result of a trial that finished after another runner gave it up (it judged the owner dead).

    The result goes on the trial's retry: a waiting retry is claimed, a running one (another runner
    training the same point) is told now. Without a retry a new finished trial with the same point holds
    it, unless the study already has ``n_trials``. Call it under :func:`study_lock`. Returns one line
    saying what happened.
    """
    rdb: Any = getattr(study._storage, "_backend", study._storage)
    original = rdb.get_trial(trial._trial_id)
    number = original.number
    why = original.user_attrs.get(ATTR_FAIL_REASON, "no reason stored")
    head = f"trial {number} was given up by another runner while this one ran it ({why})"
    steps = {**original.intermediate_values, **intermediate_values}
    own = {ATTR_FAIL_REASON, ATTR_REQUEUED, ATTR_ORPHANED, ATTR_RETRY_OF}
    attrs = {**{k: v for k, v in original.user_attrs.items() if k not in own}, **user_attrs}
    trials = rdb.get_all_trials(study._study_id, deepcopy=False)
    for retry in [t for t in trials if t.user_attrs.get(ATTR_RETRY_OF) == number]:
        waiting = retry.state == TrialState.WAITING
        if waiting and rdb.set_trial_state_values(retry._trial_id, TrialState.RUNNING):
            rdb.set_trial_system_attr(retry._trial_id, ATTR_RUNNER, runner.id)
        retry = rdb.get_trial(retry._trial_id)
        if retry.state == TrialState.RUNNING:
            try:
                for key, dist in original.distributions.items():  # an enqueued point has none yet
                    if key not in retry.params:
                        rdb.set_trial_param(retry._trial_id, key,
                                            dist.to_internal_repr(original.params[key]), dist)
                for step, value in steps.items():
                    rdb.set_trial_intermediate_value(retry._trial_id, step, value)
                for key, value in attrs.items():
                    rdb.set_trial_user_attr(retry._trial_id, key, value)
                rdb.set_trial_state_values(retry._trial_id, state, values)
            except UpdateFinishedTrialError:
                retry = rdb.get_trial(retry._trial_id)
            else:
                return f"{head}; its result is stored on its retry, trial {retry.number}"
        if retry.state.is_finished():
            return (f"{head}; its retry, trial {retry.number}, already holds a result for the same point "
                    f"({retry.state.name}), so this one is not stored again")
    counts = state_counts(study)
    if counts["finished"] + counts["running"] >= n_trials:
        return f"{head}; the study already has its {n_trials} trials, so this result is not stored"
    study.add_trial(optuna.trial.create_trial(
        params=dict(original.params), distributions=dict(original.distributions), state=state,
        values=values, intermediate_values=steps, user_attrs={**attrs, ATTR_RETRY_OF: number},
        system_attrs={ATTR_RUNNER: runner.id},
    ))
    return f"{head}; its result is stored as a new trial with the same point"


# ---------------------------------------------------------------------------------------------------
# counting and reading


def retry_chain(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> list[FrozenTrial]:
    """The trials ``trial`` retries, nearest first: its ``retry_of``, the trial that one retried, ..."""
    number = (trial.user_attrs or {}).get(ATTR_RETRY_OF)
    if not isinstance(number, int):
        return []
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    chain: list[FrozenTrial] = []
    while isinstance(number, int) and number in by_number and all(t.number != number for t in chain):
        chain.append(by_number[number])
        number = by_number[number].user_attrs.get(ATTR_RETRY_OF)
    return chain


def _counts_towards_budget(trial: FrozenTrial) -> bool:
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and not (trial.user_attrs.get(ATTR_REQUEUED, False)
                                                   or trial.user_attrs.get(ATTR_ORPHANED, False))


def counted_trials(study: optuna.Study) -> int:
    """Finished trials that count towards ``n_trials`` (a FAIL whose runner died or stopped does not)."""
    return sum(_counts_towards_budget(t) for t in study.get_trials(deepcopy=False))


def state_counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state (lower-case names), plus ``finished``: those counting towards ``n_trials``, and
    ``failed``: the FAILs among them (the trial's own fault), the one "failed" every line shows."""
    out = {s.name.lower(): 0 for s in TrialState}
    finished = failed = 0
    for trial in study.get_trials(deepcopy=False):
        out[trial.state.name.lower()] += 1
        counts = _counts_towards_budget(trial)
        finished += counts
        failed += counts and trial.state == TrialState.FAIL
    out["finished"] = finished
    out["failed"] = failed
    return out


def study_names(storage: RDBStorage) -> list[str]:
    return sorted(s.study_name for s in storage.get_all_studies())


def find_studies(storage: RDBStorage, name: str, *, task: str | None = None,
                 source: str = "study") -> list[optuna.Study]:
    """The one study lookup: ``name/<task>`` when a task is given, else ``name`` exactly, else every
    study ``name/<task>`` of a study file; none is a ``UserError`` (``source`` names the field).

    Args:
        storage: the opened study store.
        name: a study name, or a study file's name (its studies are ``<name>/<task>``).
        task: the task wanted, when ``name`` is a study file's.
        source: what the error line names (a CLI argument, or ``<file>: <field>``).

    Returns:
        The loaded studies, in name order.
    """
    names = study_names(storage)
    wanted = [f"{name}/{task}", name] if task else [name]
    chosen = next(([c] for c in wanted if c in names), [])
    if not chosen and not task:
        chosen = [n for n in names if n.startswith(name.rstrip("/") + "/")]
    if not chosen:
        what = f"{name}/{task} (or {name})" if task else f"{name!r} (or {name}/<task>)"
        raise UserError(f"{source}: no study {what} in {redact_url(storage.url)}; expected one of "
                        f"{', '.join(names) or '(none yet)'}")
    return [optuna.load_study(study_name=n, storage=storage) for n in chosen]


def find_study(storage: RDBStorage, name: str, *, task: str | None = None,
               source: str = "study") -> optuna.Study:
    """:func:`find_studies` for exactly one study (a study file with several tasks is a ``UserError``)."""
    studies = find_studies(storage, name, task=task, source=source)
    if len(studies) > 1:
        raise UserError(f"{source}: {name!r} has several tasks in {redact_url(storage.url)}; expected one "
                        f"of {', '.join(s.study_name for s in studies)}")
    return studies[0]


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The best trial (single objective) or the Pareto front (several)."""
    if len(study.directions) > 1:
        return list(study.best_trials)
    try:
        return [study.best_trial]
    except ValueError:
        return []


def trial_config(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """The flat trial config a trainable received: the study's base config plus the trial's params."""
    config = dict(study.user_attrs.get(ATTR_CONFIG) or {})
    config.update(trial.params)
    return config


def _number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def trial_records(study: optuna.Study) -> list[dict[str, Any]]:
    """One flat row per trial: number, state, value(s), budget, duration, params, cost, reason."""
    rows = []
    directions = study.directions
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        if len(directions) == 1:
            row["value"] = _number(t.value) if t.values else None
        else:
            for i in range(len(directions)):
                row[f"value_{i}"] = _number(t.values[i]) if t.values else None
        row["budget"] = t.user_attrs.get("budget")
        row["duration_s"] = round(t.duration.total_seconds(), 3) if t.duration else None
        for key, value in t.params.items():
            row[f"params_{key}"] = value
        cost = t.user_attrs.get(ATTR_COST)
        if isinstance(cost, Mapping):
            for key in ("device", "device_seconds", *COST_METRICS):
                row[key] = _number(cost.get(key))
        if ATTR_FAIL_REASON in t.user_attrs:
            row["fail_reason"] = t.user_attrs[ATTR_FAIL_REASON]
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------
# cost


def cost_of(wall_seconds: float, resources: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The ``cost`` user attr of a trial that held ``resources`` for ``wall_seconds``.

    Device-seconds are wall time x the devices held: GPUs when the trial holds any (``device: cuda``),
    else CPUs (``device: cpu``). The trainable's own figures (peak memory, throughput, parameter count)
    come from its last report, when it made them.
    """
    gpu = float(resources.get("gpu") or 0.0)
    cpu = float(resources.get("cpu") or 0.0)
    device, held = ("cuda", gpu) if gpu > 0 else ("cpu", cpu)
    wall = max(float(wall_seconds), 0.0)
    cost: dict[str, Any] = {"device": device, "devices": held, "wall_seconds": round(wall, 3),
                            "device_seconds": round(wall * held, 3)}
    for key in COST_METRICS:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            cost[key] = value
    return cost


@dataclass
class StudyCost:
    """A study's cost summed over every finished trial, pruned and failed (re-enqueued ones too) included.

    ``gpu_seconds`` and ``cpu_seconds`` are device-seconds (wall x devices held); a finished trial that
    stored no cost (a runner killed mid-trial) is estimated from its duration x the study's
    ``resources`` and counted in ``estimated``.
    """

    trials: int = 0
    wall_seconds: float = 0.0
    gpu_seconds: float = 0.0
    cpu_seconds: float = 0.0
    estimated: int = 0
    #: trials with neither a stored cost nor resources to estimate one from
    unknown: int = 0
    peak_gpu_memory_mb: float | None = None
    peak_rss_mb: float | None = None
    examples_per_second: float | None = None
    """mean over the trials that reported it"""
    trainable_params: int | None = None
    """of the best trial (else the last one that reported it)"""

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600

    @property
    def device_hours(self) -> float:
        """GPU-hours when the study used GPUs, else CPU-hours (what ``budget.device_hours`` counts)."""
        return (self.gpu_seconds or self.cpu_seconds) / 3600

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["gpu_hours"], out["device_hours"] = self.gpu_hours, self.device_hours
        return out

    def summary(self) -> str:
        """One line: device-hours, peak memory, throughput (``status``, ``best``)."""
        parts = [f"{self.trials} trials", f"{self.wall_seconds / 3600:.3g} h wall"]
        if self.gpu_seconds:
            parts.append(f"{self.gpu_hours:.3g} GPU-h")
        if self.cpu_seconds:
            parts.append(f"{self.cpu_seconds / 3600:.3g} CPU-h")
        if self.peak_gpu_memory_mb is not None:
            parts.append(f"peak GPU memory {self.peak_gpu_memory_mb:.0f} MB")
        if self.peak_rss_mb is not None:
            parts.append(f"peak RSS {self.peak_rss_mb:.0f} MB")
        if self.examples_per_second is not None:
            parts.append(f"{self.examples_per_second:.3g} examples/s")
        if self.estimated:
            parts.append(f"{self.estimated} estimated")
        if self.unknown:
            parts.append(f"{self.unknown} without cost")
        return ", ".join(parts)


def _finished(trial: FrozenTrial) -> bool:
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def study_cost(study: optuna.Study) -> StudyCost:
    """The sum of every finished trial's ``cost`` (see :class:`StudyCost`)."""
    resources = study.user_attrs.get("resources")
    total = StudyCost()
    rates: list[float] = []
    best = best_trials(study)
    best_numbers = {t.number for t in best}
    best_reported = False
    for trial in study.get_trials(deepcopy=False):
        if not _finished(trial):
            continue
        total.trials += 1
        cost = trial.user_attrs.get(ATTR_COST)
        if not isinstance(cost, Mapping):
            seconds = trial.duration.total_seconds() if trial.duration else None
            if seconds is None or not isinstance(resources, Mapping):
                total.unknown += 1
                continue
            cost = cost_of(seconds, resources, trial.user_attrs.get(ATTR_METRICS) or {})
            total.estimated += 1
        total.wall_seconds += float(cost.get("wall_seconds") or 0.0)
        seconds = float(cost.get("device_seconds") or 0.0)
        if cost.get("device") == "cpu":
            total.cpu_seconds += seconds
        else:
            total.gpu_seconds += seconds
        for key in ("peak_gpu_memory_mb", "peak_rss_mb"):
            value = cost.get(key)
            if isinstance(value, (int, float)):
                setattr(total, key, max(float(value), getattr(total, key) or 0.0))
        rate = cost.get("examples_per_second")
        if isinstance(rate, (int, float)):
            rates.append(float(rate))
        count = cost.get("trainable_params")
        if isinstance(count, (int, float)) and not (best_reported and trial.number not in best_numbers):
            total.trainable_params = int(count)
            best_reported = best_reported or trial.number in best_numbers
    total.examples_per_second = sum(rates) / len(rates) if rates else None
    return total


def cost_summary(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's stored ``cost`` (empty when it has none), for exports and ``best``."""
    cost = trial.user_attrs.get(ATTR_COST)
    return dict(cost) if isinstance(cost, Mapping) else {}
