"""genft-search: hyperparameter search and ablations for GenFT on Ray Tune + Optuna."""

__all__ = ["__version__"]

__version__ = "0.1.0"
