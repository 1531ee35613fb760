"""Ablations of GenFT's components (paper Table 4): variants × seeds around a base setting, and the table.

``run_ablation`` runs an ablation file through the study engine (one Optuna study per task, a grid
over variant × seed); ``ablation_table`` recomputes the table from the stored trials at any time.
"""

from genft_search.ablation._config import (
    DEFAULT_SEEDS,
    VARIANTS,
    AblationConfig,
    AblationSpec,
    load_ablation_config,
    parse_ablation_config,
)
from genft_search.ablation._runner import base_setting, run_ablation, task_study_config, variant_configs
from genft_search.ablation._table import (
    AVERAGE,
    AblationTable,
    ablation_runs,
    ablation_table,
    is_ablation_study,
)
from genft_search.paper import PAPER_ABLATION, paper_ablation

__all__ = [
    "AVERAGE",
    "DEFAULT_SEEDS",
    "PAPER_ABLATION",
    "VARIANTS",
    "AblationConfig",
    "AblationSpec",
    "AblationTable",
    "ablation_runs",
    "ablation_table",
    "base_setting",
    "is_ablation_study",
    "load_ablation_config",
    "paper_ablation",
    "parse_ablation_config",
    "run_ablation",
    "task_study_config",
    "variant_configs",
]
