"""Engine test helpers: paths, a valid toy study document, and the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
PG_HOST, PG_PORT, PG_DB = "127.0.0.1", 5432, "test"


def toy_study(name: str, **overrides: Any) -> dict[str, Any]:
    """A valid study document over the toy trainable (a small torch MLP, 4 epochs)."""
    doc: dict[str, Any] = {
        "name": name,
        "model": {"name": "toy"},
        "data": {"kind": "vtab1k", "tasks": ["a"]},
        "trainable": "tests.support.toy_trainable:train",
        "space": "none",
        "params": {"lr": {"float": [0.01, 1.0], "log": True}, "width": {"choice": [4, 8, 16]}},
        "fixed": {"epochs": 4},
        "sampler": {"name": "tpe", "seed": 1},
        "scheduler": {"name": "fifo"},
        "budget": {"n_trials": 4},
        "objective": {"metric": "val_top1", "direction": "maximize"},
    }
    for key, value in overrides.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``genft-search ARGS`` in a subprocess (the real console entry point)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "genft_search", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def storage_of(url: str):
    import optuna

    return optuna.storages.RDBStorage(url)


def load_trials(url: str, name: str) -> list[Any]:
    """Every trial of study ``name`` in the store at ``url`` ([] while it does not exist), read with a
    fresh connection as another process would."""
    import optuna

    rdb = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=name, storage=rdb).get_trials()
    except KeyError:
        return []
    finally:
        rdb.engine.dispose()


def wait_for(predicate: Callable[[], Any], procs: Sequence[subprocess.Popen[bytes]],
             logs: Sequence[Path] = (), timeout: float = 240.0, poll: float = 0.3) -> Any:
    """``predicate()``'s first truthy value, polled while every drill process still runs (a process
    that ends first fails the test, with the tail of its log when ``logs`` pairs one with it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        for index, proc in enumerate(procs):
            if proc.poll() is not None:
                tail = logs[index].read_text()[-3000:] if index < len(logs) else ""
                raise AssertionError(f"a process ended before the drill's moment came\n{tail}")
        time.sleep(poll)
    raise AssertionError("timed out waiting for the drill's moment")
