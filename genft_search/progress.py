"""The live progress line of a running study: finished / running / pruned / failed, best, elapsed.

On a terminal the line is rewritten in place; otherwise (CI logs, files) a line is printed when a
count changes, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

__all__ = ["ProgressLine", "Snapshot"]


@dataclass(frozen=True)
class Snapshot:
    """What the line shows; ``finished`` counts towards ``n_trials``."""

    study: str
    finished: int
    n_trials: int
    running: int
    complete: int
    pruned: int
    failed: int
    best: str | None = None


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressLine:
    """Renders :class:`Snapshot` values to a stream (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True, in_place: bool = True) -> None:
        self._own_stream = stream
        self._enabled = enabled
        # several lines at once (one per task) cannot all be rewritten in place: they are printed
        self._tty = in_place and bool(getattr(self._stream, "isatty", lambda: False)())
        self._start = time.monotonic()
        self._last: tuple | None = None
        self._width = 0

    @property
    def enabled(self) -> bool:
        """Whether :meth:`update` draws anything (callers skip computing snapshots otherwise)."""
        return self._enabled

    @property
    def _stream(self) -> TextIO:
        return self._own_stream or sys.stderr

    def __getstate__(self) -> dict:
        # Ray Tune pickles its callbacks into the experiment folder; streams do not pickle
        return {**self.__dict__, "_own_stream": None}

    def render(self, snap: Snapshot) -> str:
        best = f" · best {snap.best}" if snap.best else ""
        return (
            f"[{snap.study}] {snap.finished}/{snap.n_trials} finished · {snap.running} running · "
            f"{snap.complete} complete · {snap.pruned} pruned · {snap.failed} failed{best} · "
            f"{_clock(time.monotonic() - self._start)}"
        )

    def update(self, snap: Snapshot, force: bool = False) -> None:
        if not self._enabled:
            return
        # on a terminal every change is drawn; in logs only finished counts and the best value matter
        key = (snap.finished, snap.complete, snap.pruned, snap.failed, snap.best)
        if not self._tty and key == self._last and not force:
            return
        self._last = key
        text = self.render(snap)
        if self._tty:
            pad = max(0, self._width - len(text))
            self._stream.write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._enabled and self._tty and self._width:
            self._stream.write("\n")
            self._stream.flush()
        self._width = 0
