"""Durable trial checkpoints, so a retried trial continues from its last epoch on any runner.

Ray Tune keeps a trial's checkpoints in the runner's own experiment folder, which belongs to one run and
is removed with it. A trial failed because its runner died is retried as a *new* Optuna trial (possibly
by another runner, on another machine), so the driver copies every checkpoint Ray persists into
``$GENFT_CHECKPOINT_DIR/<study>/<trial number>/`` (default ``$GENFT_HOME/checkpoints``; it may be shared
storage). A retry's config names the folder of the trial it retries, and :func:`resuming` hands it to
the trainable as ``ray.tune.get_checkpoint()``, so custom trainables written against Ray Tune's own
checkpoint API resume as the built-in ones do. A folder is removed once its trial is told for good.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["RESUME_KEY", "keep", "kept", "remove", "resuming"]

#: reserved trial-config key: the folder a retry resumes from (removed before the trainable sees it)
RESUME_KEY = "_genft_resume_from"
_META = "genft_checkpoint.json"


def checkpoint_root() -> Path:
    """``$GENFT_CHECKPOINT_DIR``, else ``$GENFT_HOME/checkpoints`` (``~/.cache/genft-search`` by default)."""
    root = os.environ.get("GENFT_CHECKPOINT_DIR")
    if root:
        return Path(root).expanduser().absolute()
    home = os.environ.get("GENFT_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "genft-search"
    return (base / "checkpoints").absolute()


def _folder(study_name: str, number: int) -> Path:
    # study names hold '/' (file/task) and may hold anything else: one safe path component
    return checkpoint_root() / urllib.parse.quote(study_name, safe="") / str(int(number))


def _private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents readable by the owner only (checkpoints hold weights)."""
    missing = []
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)


class Kept:
    """A checkpoint kept for ``number`` of ``study_name``: its folder and the epoch it holds."""

    def __init__(self, path: Path, step: int) -> None:
        self.path = path
        self.step = step

    def __repr__(self) -> str:
        return f"Kept({str(self.path)!r}, step={self.step})"


def keep(study_name: str, number: int, source: Any, step: int) -> Path:
    """Copy a Ray ``Checkpoint`` (or a local folder) as the latest checkpoint of trial ``number``.

    The copy is written beside the target and renamed into place, so a reader (or a runner killed
    mid-copy) never sees half a checkpoint. Files are hard-linked when Ray's folder is on the same
    file system (no copy of a large state), else copied.
    """
    target = _folder(study_name, number)
    _private_dirs(target.parent)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=target.parent))
    try:
        content = staging / "content"
        # a Ray Checkpoint is os.PathLike only to refuse it (its __fspath__ raises): test for paths by type
        local = source if isinstance(source, (str, Path)) else _local_path(source)
        if local is not None:
            _link_or_copy(Path(local), content)
        else:
            source.to_directory(str(content))
        (staging / _META).write_text(json.dumps({"step": int(step)}))
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _local_path(checkpoint: Any) -> str | None:
    """The folder of a Ray checkpoint on the local file system, or None (a bucket, say)."""
    fs = getattr(checkpoint, "filesystem", None)
    if fs is None or getattr(fs, "type_name", "") != "local":
        return None
    path: str = checkpoint.path
    return path if os.path.isdir(path) else None


def _link_or_copy(source: Path, target: Path) -> None:
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def kept(study_name: str, number: int) -> Kept | None:
    """The checkpoint kept for trial ``number``, or None."""
    folder = _folder(study_name, number)
    try:
        step = int(json.loads((folder / _META).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    content = folder / "content"
    return Kept(content, step) if content.is_dir() else None


def remove(study_name: str, number: int) -> None:
    """Forget trial ``number``'s checkpoint (its result is stored, or it will never be retried)."""
    folder = _folder(study_name, number)
    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # the study's folder, once empty


def resuming(trainable: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """Wrap a function trainable so a retry starts from the checkpoint its config names.

    Inside the Ray Tune trial the folder becomes the session's loaded checkpoint, which is what
    ``ray.tune.get_checkpoint()`` returns; Ray's own restore (a checkpoint of this very trial) wins.
    """

    @functools.wraps(trainable)
    def run(config: dict[str, Any]) -> Any:
        config = dict(config)
        folder = config.pop(RESUME_KEY, None)
        if folder and os.path.isdir(folder):
            from ray import tune
            from ray.train._internal.session import get_session

            session = get_session()
            if session is not None and session.loaded_checkpoint is None:
                session.loaded_checkpoint = tune.Checkpoint.from_directory(folder)
        return trainable(config)

    return run
