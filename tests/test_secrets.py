"""Secrets in storage URLs: never printed, logged, pickled or written to a report; runs folders 0700.

A real run on PostgreSQL (trust auth, so any password connects) with the password in the userinfo,
one holding ``@``, and one in ``?password=``; then every file the run and the read commands wrote
(runs folder with Ray's ``tuner.pkl`` and experiment state, Ray's own session logs, the report, the
comparison, the export) and everything they printed is searched for it.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
from pathlib import Path

import pytest
import yaml

from genft_search import store
from tests.support.engine import run_cli, toy_study

#: URL template (``{auth}`` after the scheme, ``{query}`` at the end) -> the strings that must not appear
CASES = {
    "userinfo": ("postgres:Hunter2Userinfo@", "", ["Hunter2Userinfo"]),
    # one run for the other two (a run is the slow part): an '@' in the userinfo password, and the
    # query keys (trust auth accepts any password; libpq reads sslpassword and passfile only when needed)
    "at_sign_and_query": ("postgres:Wh0le@AtSign@", "?password=QueryPass77&sslpassword=SslKey55",
                          ["Wh0le@AtSign", "Wh0le%40AtSign", "AtSign", "QueryPass77", "SslKey55"]),
}


def test_redaction_covers_query_keys_and_at_signs():
    assert store.redact_url("postgresql://u:p@ss@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert store.redact_url("postgresql://u@db/x?sslmode=require&password=pw1&passfile=/p&sslpassword=k"
                            ) == "postgresql://u@db/x?sslmode=require&password=***&passfile=***&sslpassword=***"
    assert store.redact_url("postgresql://u@db/x?PASSWORD=pw1") == "postgresql://u@db/x?PASSWORD=***"
    assert store.redact_url("sqlite:////data/a@b.db") == "sqlite:////data/a@b.db"
    assert store.redact_text("could not connect: pw1 / p%40ss", "postgresql://u:p%40ss@db/x?password=pw1"
                             ) == "could not connect: *** / ***"
    assert store.describe_storage("postgresql+psycopg://u:p@ss@db:5432/x?password=pw1") == \
        "postgresql on db:5432/x"
    assert store.describe_storage("sqlite:////data/studies.db") == "sqlite file studies.db"


def _files(*roots: Path) -> list[Path]:
    return [p for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("case", list(CASES))
def test_no_file_a_run_wrote_holds_the_password(case, pg_url, unique_name, tmp_path):
    auth, query, secrets = CASES[case]
    scheme, _, rest = pg_url.partition("://")
    url = f"{scheme}://{auth}{rest.split('@', 1)[1]}{query}"
    name = f"{unique_name}_{case}"
    work = tmp_path / "work"
    work.mkdir()
    study = work / "study.yaml"
    study.write_text(yaml.safe_dump(toy_study(name, budget={"n_trials": 2}, fixed={"epochs": 1})))
    ray_tmp = Path(tempfile.mkdtemp(prefix="gr", dir="/tmp"))  # short: Ray's socket paths have a limit
    env = {"GENFT_RUNS_DIR": str(work / "runs"), "GENFT_KEEP_RUNS": "1", "RAY_TMPDIR": str(ray_tmp),
           "GENFT_HOME": str(work / "home")}
    try:
        results = [
            run_cli("validate", str(study), "--storage", url, env=env, cwd=work),
            run_cli("run", str(study), "--storage", url, "--quiet", env=env, cwd=work),
            run_cli("status", "--storage", url, env=env, cwd=work),
            run_cli("best", f"{name}/a", "--storage", url, env=env, cwd=work),
            run_cli("export", f"{name}/a", "--format", "json", "--out", str(work / "t.json"),
                    "--storage", url, env=env, cwd=work),
            run_cli("report", name, "--out", str(work / "reports"), "--storage", url, env=env, cwd=work),
            run_cli("compare", name, "--out", str(work / "compare"), "--storage", url, env=env, cwd=work),
        ]
        unreachable = url.replace(":5432/", ":1/")
        refused = run_cli("status", "--storage", unreachable, env=env, cwd=work)
        assert refused.returncode == 2 and "cannot open the study store" in refused.stderr
        for result in results:
            assert result.returncode == 0, (result.args, result.stderr[-2000:])
        printed = "".join(r.stdout + r.stderr for r in [*results, refused])
        pickles = list((work / "runs").rglob("tuner.pkl"))
        assert pickles, "the run kept no tuner.pkl to search (GENFT_KEEP_RUNS=1)"
        report = (work / "reports" / f"{name}.html").read_text()
        assert "postgresql on 127.0.0.1:5432" in report
        files = _files(work, ray_tmp)
        assert len(files) > 10
        for secret in secrets:
            assert secret not in printed
            for path in files:
                assert secret.encode() not in path.read_bytes(), f"{secret!r} in {path}"

        runs = work / "runs"
        for folder in [runs, *[p for p in runs.iterdir() if p.is_dir()]]:
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
