"""The command line: help everywhere, one-line refusals of bad study files, and the read commands."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from genft_search.cli import main
from tests.support.engine import TESTS, run_cli, toy_study

BAD_STUDIES = sorted((TESTS / "data" / "bad_studies").glob("*.yaml"))
COMMANDS = ["run", "validate", "status", "best", "export", "dashboard", "ablate", "report", "compare",
            "assets"]


def _expectation(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <message part>'"
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS), ["assets", "prepare"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    assert "usage: genft-search" in capsys.readouterr().out


def test_usage_mistakes_are_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the following arguments are required: FILE" in err


def _dump(db: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return list(conn.iterdump())


@pytest.fixture
def existing_store(tmp_path) -> Path:
    """A store holding one study, in a folder of its own."""
    import optuna

    from genft_search import store

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = tmp_path / "existing"
    folder.mkdir()
    db = folder / "kept.db"
    rdb = store.open_storage(f"sqlite:///{db}")
    optuna.create_study(study_name="kept/a", storage=rdb).enqueue_trial({"lr": 0.1})
    rdb.engine.dispose()
    return db


def _store_files(db: Path) -> list[str]:
    """The files beside the store, less SQLite's own WAL files (they come and go with connections)."""
    return sorted(p.name for p in db.parent.iterdir() if not p.name.endswith(("-wal", "-shm")))


def _refused(command: str, path: Path, expect: str, capsys) -> None:
    code = main([command, str(path)])
    out, err = capsys.readouterr()
    assert code == 2, (command, out, err)
    assert err.startswith("genft-search: error: ") and err.count("\n") == 1, err
    assert f"error: {path}: " in err, "the line names the file first"
    assert expect in err, err
    assert "Traceback" not in out + err and "hunter2secret" not in out + err


@pytest.mark.parametrize("path", BAD_STUDIES, ids=[p.stem for p in BAD_STUDIES])
def test_malformed_study_is_refused_in_one_line(path, tmp_path, monkeypatch, capsys, existing_store):
    """Each file of the corpus: exit 2, one line naming the file, the field and what is expected, no
    traceback, nothing written: a fresh SQLite path is not created, an existing store is unchanged."""
    expect = _expectation(path)
    work = tmp_path / "work"
    work.mkdir()
    db = work / "store.db"
    monkeypatch.chdir(work)
    monkeypatch.setenv("GENFT_STORAGE", f"sqlite:///{db}")
    monkeypatch.delenv("GENFT_SURELY_UNSET_VARIABLE", raising=False)
    for command in ("validate", "run"):
        _refused(command, path, expect, capsys)
        assert not db.exists(), "a refused study must not create the store"
        assert list(work.iterdir()) == [], "nothing may be written"

    before, names = _dump(existing_store), _store_files(existing_store)
    monkeypatch.setenv("GENFT_STORAGE", f"sqlite:///{existing_store}")
    for command in ("validate", "run"):
        _refused(command, path, expect, capsys)
        assert _dump(existing_store) == before, "a refused study must leave an existing store as it was"
    assert _store_files(existing_store) == names
    assert list(work.iterdir()) == []


def test_refusal_through_the_real_entry_point(tmp_path):
    path = TESTS / "data" / "bad_studies" / "unreachable_database.yaml"
    result = run_cli("run", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert "hunter2secret" not in result.stderr and "postgres:***@127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []


def test_secrets_are_not_printed(tmp_path, capsys):
    url = "postgresql+psycopg://postgres:Sup3r-Secret@127.0.0.1:1/test"
    assert main(["status", "--storage", url]) == 2
    assert main(["export", "x", "--format", "csv", "--storage", url]) == 2
    out, err = capsys.readouterr()
    assert "Sup3r-Secret" not in out + err and err.count("\n") == 2


def test_missing_command_modules_say_so(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "genft_search.report", None)
    assert main(["report", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "report: not available" in err


def test_read_commands_on_a_missing_store(tmp_path, capsys):
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    for args in (["status"], ["best", "x"], ["export", "x", "--format", "json"]):
        assert main([*args, "--storage", missing]) == 2
    err = capsys.readouterr().err
    assert err.count("no study store") == 3
    assert not (tmp_path / "none.db").exists()


def test_validate_a_good_file_writes_nothing(write_study, tmp_path, capsys):
    db = tmp_path / "v.db"
    path = write_study(toy_study("valid"))
    assert main(["validate", str(path), "--storage", f"sqlite:///{db}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {path}") and "valid/a (new)" in out
    assert not db.exists()


# ---------------------------------------------------------------------------------------------------
# commands on a real study (one toy run shared by the tests below)


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory, ray_local) -> tuple[str, Path]:
    from genft_search.config import parse_study_config
    from genft_search.tune import run_study

    folder = tmp_path_factory.mktemp("cli")
    url = f"sqlite:///{folder / 'cli.db'}"
    doc = toy_study("cli", budget={"n_trials": 3}, fixed={"epochs": 2})
    run_study(parse_study_config(doc, "cli.yaml"), storage=url, progress=False)
    (folder / "cli.yaml").write_text(json.dumps(doc))
    return url, folder


@pytest.mark.slow
def test_status_best_export(toy_store, capsys):
    url, folder = toy_store
    assert main(["status", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert "cli/a" in out and "3/3" in out and "genft" in out

    assert main(["best", "cli", "--storage", url, "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best["study"] == "cli/a" and best["config"]["data"]["task"] == "a"
    assert best["config"]["width"] == best["params"]["width"] and best["budget"] == 2

    assert main(["export", "cli/a", "--format", "csv", "--storage", url]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 3 and {r["state"] for r in rows} == {"COMPLETE"}
    assert max(float(r["value"]) for r in rows) == pytest.approx(best["values"][0])

    target = folder / "t.tex"
    assert main(["export", "cli/a", "--format", "latex", "--storage", url, "--out", str(target)]) == 0
    assert "\\begin{tabular}" in target.read_text()
    capsys.readouterr()

    assert main(["best", "nope", "--storage", url]) == 2
    assert "no study 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_validate_reports_resume_and_refuses_a_changed_space(toy_store, capsys):
    url, folder = toy_store
    doc = json.loads((folder / "cli.yaml").read_text())
    assert main(["validate", str(folder / "cli.yaml"), "--storage", url]) == 0
    assert "cli/a (resumes at 3 finished)" in capsys.readouterr().out
    doc["params"]["lr"] = {"float": [0.001, 1.0], "log": True}
    (folder / "changed.yaml").write_text(json.dumps(doc))
    assert main(["run", str(folder / "changed.yaml"), "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "another search space" in err and "--allow-space-change" in err and err.count("\n") == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_dashboard_serves_the_store_on_localhost(toy_store):
    url, _ = toy_store
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "genft_search", "dashboard", "--storage", url,
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as response:
                    body = json.loads(response.read())
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        assert body is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
        assert any(s["study_name"] == "cli/a" for s in body["study_summaries"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_dashboard_binds_the_host_it_is_given(toy_store):
    """``--host`` (``0.0.0.0`` in the compose file): bound to 127.0.0.2, 127.0.0.1 does not answer."""
    url, _ = toy_store
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "genft_search", "dashboard", "--storage", url,
                             "--host", "127.0.0.2", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        answered = False
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.2:{port}/api/studies", timeout=2):
                    answered = True
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        assert answered, proc.stderr.read() if proc.poll() is not None else "no answer"
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_concurrency_is_capped_at_the_cpus_with_a_note(write_study, tmp_path, monkeypatch, capsys):
    """``resources.cpu: 0.001`` would start 1000 trials per CPU; validate caps it and says so."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    path = write_study(toy_study("tiny", resources={"cpu": 0.001}))
    assert main(["validate", str(path), "--storage", f"sqlite:///{tmp_path / 'v.db'}"]) == 0
    out = capsys.readouterr().out
    assert "up to 2 trials at once on this machine" in out
    assert (f"note: {path}: resources.cpu 0.001 per trial would run 2000 trials at once; capped at 2, "
            f"one per CPU there is") in out
    from genft_search.config import parse_study_config
    from genft_search.tune._ray import fit_resources

    config = parse_study_config(toy_study("x", resources={"cpu": 0.5, "gpu": 0.25}), "x.yaml")
    assert fit_resources(config, 16.0, 1.0) == 4  # the GPU is the limit: no cap
    assert fit_resources(config, 2.0, 1.0) == 2


def _wsgi(app: Any, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
    """One request to a WSGI app, in process."""
    import wsgiref.util

    data = json.dumps(body).encode() if body is not None else b""
    environ: dict[str, Any] = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update({"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_TYPE": "application/json",
                    "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data)})
    status: list[str] = []
    chunks = app(environ, lambda s, headers, exc_info=None: status.append(s))
    return int(status[0].split()[0]), b"".join(chunks)


def _served_storage(monkeypatch, *args: str) -> Any:
    """The storage ``genft-search dashboard ARGS`` hands to optuna-dashboard (the server is not run)."""
    import optuna_dashboard

    served: list[Any] = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, **kw: served.append((storage, kw)))
    assert main(["dashboard", *args]) == 0
    (storage, kw), = served
    assert kw["host"] == "127.0.0.1"
    return storage


def test_dashboard_is_read_only_unless_allowed(tmp_path, monkeypatch, capsys):
    """optuna-dashboard's own delete, rename, tell, attr and note endpoints are refused (403) and the
    store stays as it was; the same delete works with ``--allow-writes``."""
    import optuna
    import optuna_dashboard

    from genft_search import store

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = tmp_path / "dash.db"
    url = f"sqlite:///{db}"
    study = optuna.create_study(study_name="dash/a", storage=store.open_storage(url))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    running = study.ask()
    study_id, trial_id = study._study_id, running._trial_id
    before = _dump(db)

    app = optuna_dashboard.wsgi(_served_storage(monkeypatch, "--storage", url))
    assert "read-only" in capsys.readouterr().out
    code, body = _wsgi(app, "GET", "/api/studies")
    assert code == 200 and b"dash/a" in body
    assert _wsgi(app, "GET", f"/api/studies/{study_id}")[0] == 200
    for method, path, payload in [
        ("DELETE", f"/api/studies/{study_id}", {}),
        ("POST", f"/api/trials/{trial_id}/tell", {"state": "Fail"}),
        ("POST", f"/api/trials/{trial_id}/user-attrs", {"user_attrs": {"k": 1}}),
        ("PUT", f"/api/studies/{study_id}/note", {"version": 1, "body": "hi"}),
        ("POST", "/api/studies", {"study_name": "new", "directions": ["minimize"]}),
    ]:
        code, body = _wsgi(app, method, path, payload)
        assert code == 403 and b"read-only" in body and b"--allow-writes" in body, (path, code, body)
    code, _ = _wsgi(app, "POST", f"/api/studies/{study_id}/rename", {"study_name": "dash/b"})
    assert code >= 400
    assert _dump(db) == before, "the read-only dashboard changed the store"

    writable = optuna_dashboard.wsgi(_served_storage(monkeypatch, "--storage", url, "--allow-writes"))
    assert _wsgi(writable, "DELETE", f"/api/studies/{study_id}", {})[0] == 204
    assert store.study_names(store.open_storage(url, create=False)) == []


def test_dashboard_help_shows_allow_writes(capsys):
    with pytest.raises(SystemExit):
        main(["dashboard", "--help"])
    out = capsys.readouterr().out
    assert "--allow-writes" in out and "Read-only" in out
