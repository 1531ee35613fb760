"""Real resume: a trial whose runner died continues, in its retry, from its last kept checkpoint.

The runner is a real ``genft-search run`` process, SIGKILLed (with its local Ray) after a trial's
second epoch; the rerun's retry starts at epoch 3 from the checkpoint kept under
``$GENFT_CHECKPOINT_DIR``. The trainable uses only Ray Tune's public checkpoint API.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from genft_search import store
from genft_search.tune import _checkpoints
from tests.support.checkpoint_trainable import score
from tests.support.engine import load_trials, run_cli, toy_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

EPOCHS = 5




def _doc(name: str, n_trials: int) -> dict:
    return toy_study(name, trainable="tests.support.checkpoint_trainable:train",
                     params={"lr": {"float": [0.05, 1.0], "log": True}},
                     fixed={"epochs": EPOCHS, "sleep": 1.0}, budget={"n_trials": n_trials},
                     objective={"metric": "score", "direction": "maximize"},
                     resources={"cpu": 1})


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_sigkill_at_epoch_2_then_rerun_resumes_at_epoch_3(backend, unique_name, tmp_path, request,
                                                           monkeypatch):
    url = (f"sqlite:///{tmp_path / 'resume.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_url"))
    store.open_storage(url, create=True).engine.dispose()  # polled below before the runner creates it
    ckpt_root = tmp_path / "checkpoints"
    monkeypatch.setenv("GENFT_CHECKPOINT_DIR", str(ckpt_root))
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(_doc(unique_name, n_trials=3)))
    name = f"{unique_name}/a"

    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "genft_search", "run", str(path), "--storage", url],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            victim = None
            while victim is None:
                assert time.monotonic() < deadline, "no trial reached epoch 2"
                assert proc.poll() is None, (tmp_path / "first.log").read_text()
                for trial in load_trials(url, name):
                    kept = _checkpoints.kept(name, trial.number)
                    if trial.state == TrialState.RUNNING and kept is not None and kept.step >= 2:
                        victim = trial.number
                time.sleep(0.1)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the runner and its local Ray, like a machine crash
            proc.wait(timeout=60)

    study_folder = ckpt_root / _checkpoints._folder(name, 0).parent.name
    assert stat.S_IMODE(study_folder.stat().st_mode) == 0o700, "checkpoints are the owner's only"
    kept = {t.number: _checkpoints.kept(name, t.number) for t in load_trials(url, name)
            if t.state == TrialState.RUNNING}
    assert kept[victim] is not None and kept[victim].step >= 2

    result = run_cli("run", str(path), "--storage", url, cwd=tmp_path,
                     env={"GENFT_CHECKPOINT_DIR": str(ckpt_root)})
    assert result.returncode == 0, result.stdout + result.stderr
    after = {t.number: t for t in load_trials(url, name)}
    assert all(t.state not in (TrialState.RUNNING, TrialState.WAITING) for t in after.values())
    retries = [t for t in after.values() if t.user_attrs.get(store.ATTR_RETRY_OF) == victim]
    assert len(retries) == 1
    retry = retries[0]
    resumed_at = kept[victim].step
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs[store.ATTR_RESUMED_FROM_EPOCH] == resumed_at
    assert retry.user_attrs["metrics"]["started_at"] == resumed_at + 1, "trained on from the checkpoint"
    lr = retry.params["lr"]
    assert retry.intermediate_values == {e: pytest.approx(score(lr, e)) for e in range(1, EPOCHS + 1)}, \
        "the curve is whole: the original's epochs, then the retry's"
    assert retry.value == pytest.approx(score(lr, EPOCHS))
    counted = store.counted_trials(optuna.load_study(study_name=name, storage=url))
    assert counted == 3
    assert not any(ckpt_root.rglob("*.json")), "every checkpoint is removed once its trial is told"


def test_keep_replaces_atomically_and_remove_cleans_up(tmp_path, monkeypatch):
    monkeypatch.setenv("GENFT_CHECKPOINT_DIR", str(tmp_path / "ck"))
    for step in (1, 2):
        source = tmp_path / f"src{step}"
        source.mkdir()
        (source / "state.json").write_text(str(step))
        _checkpoints.keep("file/task a", 7, source, step)
    found = _checkpoints.kept("file/task a", 7)
    assert found is not None and found.step == 2 and (found.path / "state.json").read_text() == "2"
    assert [p.name for p in found.path.parent.parent.iterdir()] == ["7"], "no staging or old copies left"
    assert _checkpoints.kept("file/task a", 8) is None
    _checkpoints.remove("file/task a", 7)
    assert _checkpoints.kept("file/task a", 7) is None
    assert not any((tmp_path / "ck").iterdir()), "the study's folder goes with its last checkpoint"


def test_resuming_hands_the_folder_to_get_checkpoint_and_hides_the_key(tmp_path):
    seen = {}

    def trainable(config):
        seen.update(config)

    wrapped = _checkpoints.resuming(trainable)
    wrapped({"lr": 0.1, _checkpoints.RESUME_KEY: str(tmp_path)})  # outside Ray: no session to set
    assert seen == {"lr": 0.1}
