"""``python -m genft_search``: the same as the ``genft-search`` command."""

import sys

from genft_search.cli import main

sys.exit(main())
