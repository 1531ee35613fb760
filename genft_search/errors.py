"""Errors that reach the user as one line (exit code 2) instead of a traceback."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A mistake in the user's input: study file, CLI flags, data paths, storage URL.

    The message is a single line naming the file, the field and what was expected; the CLI prints
    it as ``genft-search: error: <message>`` and exits with code 2.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
