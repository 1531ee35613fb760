"""The engine's fault handling without Ray: one "failed", derived sampler seeds, experiment folders."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from genft_search import store
from genft_search.cli import main
from genft_search.config import load_study_config
from genft_search.progress import ProgressLine
from genft_search.tune import plan_study
from genft_search.tune._ray import RUNNER_FILE, STALE_RUN_AGE_S, claim_run, clean_runs, run_name, snapshot
from genft_search.tune._run import run_seed
from tests.support.engine import toy_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_failed_means_the_same_on_every_line(sqlite_url, unique_name, capsys):
    storage = store.open_storage(sqlite_url)
    study = optuna.create_study(study_name=f"{unique_name}/a", storage=storage, direction="maximize")
    for value in (0.5, None, None):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        if value is not None:
            study.tell(trial, value)
        elif not study.get_trials(states=(TrialState.FAIL,)):
            study.tell(trial, state=TrialState.FAIL)  # the trial's own fault: counts as failed
        else:  # its runner died: not the trial's fault, never "failed"
            store.give_up_trial(study, storage.get_trial(trial._trial_id), "runner gone")
    counts = store.state_counts(study)
    assert counts["fail"] == 2 and counts["failed"] == 1 and counts["finished"] == 2
    snap = snapshot(study, study.study_name, 4, [type("O", (), {"metric": "val_top1"})()])
    assert snap.failed == 1
    assert "2/4 finished · 0 running · 1 complete · 0 pruned · 1 failed" in ProgressLine().render(snap)
    assert main(["status", "--storage", sqlite_url]) == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[2:7] == ["2/?", "1", "0", "1", "0"]  # finished, complete, pruned, failed, running


def test_run_seed_is_the_files_first_then_derived_per_run(write_study, unique_name):
    plan = plan_study(load_study_config(write_study(toy_study(unique_name))), check_data=False)
    assert plan.config.sampler.seed == 1
    seeds = [run_seed(plan, f"{unique_name}/a", i) for i in range(4)]
    assert seeds[0] == 1 and len(set(seeds)) == 4
    assert seeds == [run_seed(plan, f"{unique_name}/a", i) for i in range(4)], "reproducible"
    assert run_seed(plan, f"{unique_name}/b", 1) != seeds[1]
    first = []
    for seed in seeds[:2]:
        study = optuna.create_study(sampler=plan.sampler(seed=seed))
        first.append(study.ask().suggest_float("x", 0, 1))
    assert first[0] != first[1]
    unseeded = plan_study(load_study_config(write_study(toy_study(unique_name, sampler={"name": "tpe"}),
                                                        "u.yaml")), check_data=False)
    assert run_seed(unseeded, "s", 3) is None


def test_experiment_folders_are_unique_and_dead_runners_ones_are_cleaned(tmp_path):
    names = {run_name("study/file", "task") for _ in range(50)}
    assert len(names) == 50 and all("/" not in n for n in names)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = store.Runner(store._hostname(), proc.pid, store._process_start(proc.pid) or 1.0)
    proc.wait()
    me = store.Runner.current()
    root = str(tmp_path)
    mine, gone = run_name("s", "a"), run_name("s", "a")
    claim_run(root, mine, me)
    claim_run(root, gone, dead)
    assert oct((tmp_path / mine).stat().st_mode & 0o777) == "0o700"
    assert (tmp_path / mine / RUNNER_FILE).read_text() == me.id
    elsewhere, old = run_name("s", "a"), run_name("s", "a")
    claim_run(root, elsewhere, store.Runner("other-host.invalid", 1, 1.0))
    claim_run(root, old, store.Runner("other-host.invalid", 2, 1.0))
    week = time.time() - STALE_RUN_AGE_S - 3600
    for path in [tmp_path / old, *(tmp_path / old).rglob("*")]:
        os.utime(path, (week, week))
    (tmp_path / "not-ours").mkdir()
    assert sorted(clean_runs(root)) == sorted([gone, old])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine, elsewhere, "not-ours"])
    assert clean_runs(str(tmp_path / "missing")) == []
    assert clean_runs("s3://bucket/runs") == []


@pytest.mark.parametrize("value", ["0", "2.5", "300"])
def test_store_retry_window_accepts_seconds(monkeypatch, value):
    monkeypatch.setenv(store.STORE_RETRY_ENV, value)
    assert store.store_retry_window() == float(value)


def test_a_bad_store_retry_window_is_one_line(monkeypatch):
    from genft_search.errors import UserError

    monkeypatch.setenv(store.STORE_RETRY_ENV, "-1")
    with pytest.raises(UserError, match=r"\$GENFT_STORE_RETRY_S: '-1' is not a number of seconds"):
        store.store_retry_window()


def test_a_hidden_progress_line_queries_nothing(monkeypatch):
    from genft_search.tune import _ray

    calls: list[str] = []
    monkeypatch.setattr(_ray, "snapshot", lambda *a, **k: calls.append("snapshot"))
    searcher = type("S", (), {"changed": 1, "lost": None, "_study": None})()
    for enabled, expected in ((False, []), (True, ["snapshot"])):
        calls.clear()
        events = _ray.make_callback(searcher, ProgressLine(enabled=enabled), "s/a", 4,  # type: ignore[arg-type]
                                    [])
        events.on_trial_complete(0, [], None)
        assert calls == expected


def test_a_run_without_a_progress_line_reads_nothing_for_it():
    """Ray's loop waits for the run's callback after every result, and each trainable waits for the loop:
    with the line off (``--quiet``, benchmarks) a refresh must not read the store."""
    from genft_search.progress import Snapshot
    from genft_search.tune._ray import make_callback, total_snapshot

    class _Searcher:
        changed, lost = 0, None

        def __init__(self) -> None:
            self.started: list[str] = []

        @property
        def _study(self) -> optuna.Study:
            raise AssertionError("the callback read the study for a line nobody sees")

        def mark_started(self, trial_id: str) -> None:
            self.started.append(trial_id)

    searcher = _Searcher()
    callback = make_callback(searcher, ProgressLine(enabled=False), "s/a", 4, [])  # type: ignore[arg-type]
    trial = type("T", (), {"trial_id": "t1"})()
    callback.on_trial_start(0, [], trial)
    callback.on_step_end(1, [])
    callback.on_trial_complete(2, [], trial)
    assert searcher.started == ["t1"]
    snaps = [Snapshot("a", 2, 4, 1, 1, 1, 0), Snapshot("b", 3, 4, 0, 2, 0, 1)]
    assert total_snapshot(snaps) == Snapshot("total", 5, 8, 1, 3, 1, 1)


def test_a_trial_whose_worker_is_lost_again_and_again_stops_being_retried(sqlite_url, unique_name):
    # a worker that can never start (say, the trainable does not import there) looks like a lost node;
    # its retries end after MAX_LOST_RETRIES and the last FAIL counts, so the run cannot loop forever
    from genft_search.config import parse_study_config
    from genft_search.store import Runner
    from genft_search.tune import OptunaSearcher
    from genft_search.tune._searcher import MAX_LOST_RETRIES

    plan = plan_study(parse_study_config(toy_study(unique_name), "study.yaml"))
    study = optuna.create_study(study_name=unique_name, storage=sqlite_url, sampler=plan.sampler(),
                                directions=plan.config.directions)
    searcher = OptunaSearcher(study, plan, "a", Runner.current())
    for attempt in range(MAX_LOST_RETRIES + 1):  # the first try and its retries
        assert searcher.suggest(f"t{attempt}") not in (None, OptunaSearcher.FINISHED)
        searcher.fail(f"t{attempt}", "ModuleNotFoundError", lost=True)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL] * (MAX_LOST_RETRIES + 1)
    assert [t.user_attrs.get("retry_of") for t in trials] == [None, *range(MAX_LOST_RETRIES)]
    assert trials[-1].params == trials[0].params  # the same point each time
    assert "not retried again" in trials[-1].user_attrs["fail_reason"]
    assert all("not retried again" not in t.user_attrs["fail_reason"] for t in trials[:-1])
    assert store.counted_trials(study) == 1  # only the last FAIL counts towards n_trials
