"""Pieces every trainable shares: seeding, the Ray Tune session, per-epoch reports and checkpoints.

The same training function runs inside a Ray Tune trial (reports and checkpoints go to Tune, a
retried trial resumes from ``ray.tune.get_checkpoint()``) and in plain Python (reports are kept in
:data:`LOCAL_SESSION` and printed), so a trainable can be debugged without Ray.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genft_search.errors import UserError

__all__ = [
    "check_finite",
    "device_and_amp",
    "load_resume_state",
    "report_epoch",
    "rng_state",
    "seed_everything",
    "set_rng_state",
    "trial_task",
    "usage_metrics",
]

STATE_FILE = "trial_state.pt"


def trial_task(config: Mapping[str, Any]) -> str:
    """The task a trial config trains: ``data.task``, or the only entry of ``data.tasks``."""
    data = config.get("data") or {}
    task = data.get("task")
    if not task:
        tasks = data.get("tasks") or []
        if len(tasks) != 1:
            raise UserError("data: task: missing; expected the task name of this trial")
        task = tasks[0]
    return str(task)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and ask torch for deterministic kernels."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def check_finite(loss: float, epoch: int) -> None:
    """Raise ``FloatingPointError`` when a loss is NaN or infinite, so the engine marks the trial FAIL."""
    value = float(loss)
    if not np.isfinite(value):
        raise FloatingPointError(f"non-finite training loss ({value}) at epoch {epoch}")


def in_tune_session() -> bool:
    """True inside a function run by a Ray Tune ``Tuner`` (cheap: never imports Ray itself)."""
    if "ray" not in sys.modules:
        return False
    try:
        from ray.train._internal.session import get_session
    except ImportError:  # pragma: no cover - layout of a future Ray
        return False
    return get_session() is not None


def device_and_amp() -> tuple[torch.device, bool]:
    """The device a trial trains on and whether mixed precision is used (CUDA only)."""
    if torch.cuda.is_available():
        return torch.device("cuda"), True
    return torch.device("cpu"), False


def usage_metrics(device: torch.device | str) -> dict[str, float]:
    """Peak memory for a trial's ``cost``: on CUDA ``torch.cuda.max_memory_allocated`` (MB; reset it at the
    start of a run), else the peak resident set size of this process (MB; a reused Ray actor keeps the
    peak of its earlier trials)."""
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        return {"peak_gpu_memory_mb": torch.cuda.max_memory_allocated() / 2**20}
    import resource

    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {"peak_rss_mb": peak_kb / 1024}


def rng_state() -> dict[str, Any]:
    """Every random generator's state, to store in a trial checkpoint."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        # tensors and plain numbers only, so the checkpoint loads with ``weights_only=True``
        "numpy": (kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class LocalSession:
    """What :func:`report_epoch` records outside Ray Tune (plain Python, tests, notebooks).

    ``resume_state`` is returned by :func:`load_resume_state` when set, so a plain-Python run can be
    resumed from the state of an earlier one exactly as Tune resumes a retried trial.
    """

    reports: list[dict[str, Any]] = field(default_factory=list)
    last_state: dict[str, Any] | None = None
    resume_state: dict[str, Any] | None = None
    verbose: bool = True

    def reset(self) -> None:
        self.reports.clear()
        self.last_state = None
        self.resume_state = None


LOCAL_SESSION = LocalSession()


def load_resume_state() -> dict[str, Any] | None:
    """The state saved by the last :func:`report_epoch` of this trial, or None for a fresh start."""
    if not in_tune_session():
        return LOCAL_SESSION.resume_state
    import ray.tune

    checkpoint = ray.tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        path = Path(directory) / STATE_FILE
        if not path.is_file():
            return None
        # weights_only: a checkpoint folder may be shared storage; never unpickle arbitrary objects
        return torch.load(path, map_location="cpu", weights_only=True)


def report_epoch(metrics: dict[str, Any], state: dict[str, Any]) -> None:
    """Report one epoch's metrics together with a checkpoint holding ``state``.

    ``state`` holds what a retried trial needs to continue: the trainable parameters, optimizer,
    scheduler, epoch and RNG states. Under Tune it is written to a temporary directory that
    ``ray.tune.report`` persists into the trial's storage; outside Tune it is kept in memory.
    """
    clean = {key: _plain(value) for key, value in metrics.items()}
    if not in_tune_session():
        LOCAL_SESSION.reports.append(clean)
        LOCAL_SESSION.last_state = state
        if LOCAL_SESSION.verbose:
            print(json.dumps(clean, sort_keys=True), flush=True)
        return
    import ray.tune

    directory = tempfile.mkdtemp(prefix="genft-ckpt-")
    try:
        torch.save(state, os.path.join(directory, STATE_FILE))
        ray.tune.report(clean, checkpoint=ray.tune.Checkpoint.from_directory(directory))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _plain(value: Any) -> Any:
    """Turn tensors and NumPy scalars into Python numbers so any reporter can serialise them."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
