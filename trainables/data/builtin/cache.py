"""Where the built-in assets are cached, and building each one exactly once.

Cache: ``$GENFT_HOME`` or ``~/.cache/genft-search`` (never inside the git checkout). An asset is
written into a temporary sibling folder and renamed into place under a file lock, so parallel
trials that all find it missing build it once and never read a half-written folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["build_once", "genft_home"]

DONE = ".complete"


def genft_home() -> Path:
    """The cache folder for prepared assets."""
    home = os.environ.get("GENFT_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "genft-search"


def build_once(target: Path, force: bool, writer: Callable[[Path], str | None]) -> Path:
    """Build ``target`` with ``writer(staging_folder)`` unless it is complete (or ``force``).

    What ``writer`` returns (e.g. row counts) is kept in the folder's completion marker.
    """
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / DONE).is_file() and not force:
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            note = writer(staging)
            (staging / DONE).write_text(note or "ok\n")
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
