"""``genft-search`` as a runner "on another host" for the fault drills.

``GENFT_TEST_HOST`` is the host name it records on its trials (and judges other runners by), and
``GENFT_TEST_CLOCK_OFFSET_S`` shifts its wall clock (``time.time``), as a machine whose clock is off
would be. Usage: ``python -m tests.support.fault_runner run FILE --storage URL``.
"""

from __future__ import annotations

import os
import sys
import time


def _main() -> int:
    offset = float(os.environ.get("GENFT_TEST_CLOCK_OFFSET_S") or 0.0)
    if offset:
        real = time.time
        time.time = lambda: real() + offset
    host = os.environ.get("GENFT_TEST_HOST")
    if host:
        from genft_search import store

        store._hostname = lambda: host  # the one place the runner learns its host name
    from genft_search.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(_main())
