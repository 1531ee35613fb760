"""Ray Tune trainables that a study trains: timm ViTs on VTAB-1k/FGVC, text encoders on GLUE.

Importing this package is cheap; the heavy modules load when ``get_trainable`` asks for them.
"""

from trainables.registry import TrainableModule, check_study, data_kinds, evaluate_test, get_trainable

__all__ = ["TrainableModule", "check_study", "data_kinds", "evaluate_test", "get_trainable"]
