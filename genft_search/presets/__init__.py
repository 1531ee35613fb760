"""Search-space presets (``spaces.yaml``); the paper's settings are in ``genft_search.paper``."""
