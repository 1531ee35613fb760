"""Samplers of genft-search beyond Optuna's own: the prior-guided sampler (``sampler: {name: prior}``).

See :class:`PriorSampler` for how it mixes the task's paper setting, the incumbent and a base sampler.
"""

from genft_search.samplers._prior import CONFIDENCE, SOURCES, PriorSampler, PriorState

__all__ = ["CONFIDENCE", "SOURCES", "PriorSampler", "PriorState"]
