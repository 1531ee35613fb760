"""genft-search: hyperparameter search and ablations for GenFT on Ray Tune + Optuna."""

__version__ = "0.1.0"
