"""What the GenFT paper (arXiv 2506.11042) reports, shipped with the package.

The per-task settings (Appendix B, Tables 8-10), results (Tables 1-3 and 11), ablations (Tables 4,
12 and 13), parameter counts and the tables' short codes, read from ``paper.yaml`` in this package.
Search presets, ``warm_start: paper``, an ablation's ``base: paper``, reports and ablation tables all
quote these figures, so an installed copy needs nothing outside the package.
"""

from genft_search.paper._data import (
    ACTIVATION_CODES,
    INIT_CODES,
    PAPER_ABLATION,
    PAPER_PARAMS_M,
    PaperBenchmark,
    paper_ablation,
    paper_benchmark,
    paper_result,
    paper_setting,
)

__all__ = [
    "ACTIVATION_CODES",
    "INIT_CODES",
    "PAPER_ABLATION",
    "PAPER_PARAMS_M",
    "PaperBenchmark",
    "paper_ablation",
    "paper_benchmark",
    "paper_result",
    "paper_setting",
]
