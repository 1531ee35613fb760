"""Errors that reach the user as one line (exit code 2) instead of a traceback."""

from __future__ import annotations

__all__ = ["StoreUnavailable", "UserError"]


class UserError(Exception):
    """A mistake in the user's input: study file, CLI flags, data paths, storage URL.

    The message is a single line naming the file, the field and what was expected; the CLI prints
    it as ``genft-search: error: <message>`` and exits with code 2.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class StoreUnavailable(Exception):
    """The study store stayed unreachable for longer than the retry window (``GENFT_STORE_RETRY_S``).

    Not the user's mistake and not a crash: the CLI prints the one-line message and exits with code 3;
    the store still holds every result stored so far, and running the same command again resumes.
    """

    exit_code = 3

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
