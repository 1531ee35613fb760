"""The statistics behind claims such as "GenFT beats LoRA": mean ± std over seeds, a 95 % interval for
one task's difference, and a signed-rank test with its effect size across tasks.

Careful re-tuning studies of PEFT methods on VTAB-1k find well-tuned methods within 1–2 points of
each other (issue 11), so a difference is reported with its uncertainty, never alone:

- per task, over seeds: a **paired** t-interval on the per-seed differences when both methods were
  evaluated with the same seeds (a seed fixes data order and head initialisation, so it pairs the
  runs and removes the variance they share); Welch's interval on the two samples when the seeds do
  not match; nothing (NaN) with fewer than two seeds;
- across tasks: the Wilcoxon signed-rank test on the per-task mean differences (no normality
  assumption, one value per task, as tasks are not exchangeable with seeds), two-sided, zeros dropped
  (scipy's ``zero_method="wilcox"``), with the matched-pairs rank-biserial correlation as effect size;
- a median over tasks (the cross-task atlas of hyperparameter importances) with a percentile bootstrap
  interval that resamples tasks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MIN_TASKS",
    "Difference",
    "MeanStd",
    "SignedRank",
    "bootstrap_median",
    "difference_interval",
    "mean_std",
    "signed_rank_test",
]

#: with n tasks the smallest two-sided exact Wilcoxon p-value is 2 / 2**n: 0.0625 for n = 5, so below
#: six tasks the test cannot reach p < 0.05 whatever the data say
MIN_TASKS = 6


@dataclass(frozen=True)
class MeanStd:
    """Mean and sample standard deviation (``ddof=1``; NaN for fewer than two values)."""

    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.2f}" if math.isnan(self.std) else f"{self.mean:.2f} ± {self.std:.2f}"


def mean_std(values: Iterable[float]) -> MeanStd:
    """Mean ± std over seeds, as the paper's ablation tables and ours report them."""
    data = np.asarray([float(v) for v in values], dtype=float)
    if data.size == 0:
        return MeanStd(math.nan, math.nan, 0)
    std = float(np.std(data, ddof=1)) if data.size > 1 else math.nan
    return MeanStd(float(np.mean(data)), std, int(data.size))


@dataclass(frozen=True)
class Difference:
    """``a − b`` with its two-sided interval; ``paired`` says which interval (see the module docs)."""

    mean: float
    low: float
    high: float
    n: int
    """pairs (paired) or the smaller of the two sample sizes (Welch)"""
    paired: bool
    df: float
    level: float = 0.95

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)


def _t_interval(centre: float, se: float, df: float, level: float) -> tuple[float, float]:
    from scipy import stats  # about a second to import: only when a figure needs it

    if not (df > 0 and math.isfinite(se)):
        return math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return centre - half, centre + half


def difference_interval(a: Mapping[int, float], b: Mapping[int, float], level: float = 0.95) -> Difference:
    """``a − b`` over seeds (``{seed: value}`` each) with a ``level`` t-interval.

    Paired on the common seeds when there are at least two of them; otherwise Welch's unequal-variance
    interval on all values of each side; with fewer than two values on a side the interval is NaN.
    """
    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        diffs = np.asarray([float(a[s]) - float(b[s]) for s in common])
        n = diffs.size
        centre = float(np.mean(diffs))
        low, high = _t_interval(centre, float(np.std(diffs, ddof=1)) / math.sqrt(n), n - 1, level)
        return Difference(centre, low, high, n, True, float(n - 1), level)
    xa = np.asarray([float(v) for v in a.values()])
    xb = np.asarray([float(v) for v in b.values()])
    if xa.size == 0 or xb.size == 0:
        return Difference(math.nan, math.nan, math.nan, 0, False, math.nan, level)
    centre = float(np.mean(xa) - np.mean(xb))
    if xa.size < 2 or xb.size < 2:
        return Difference(centre, math.nan, math.nan, int(min(xa.size, xb.size)), False, math.nan, level)
    va, vb = np.var(xa, ddof=1) / xa.size, np.var(xb, ddof=1) / xb.size
    se = math.sqrt(va + vb)
    if se == 0:
        df = float(xa.size + xb.size - 2)
    else:
        df = float((va + vb) ** 2 / (va**2 / (xa.size - 1) + vb**2 / (xb.size - 1)))
    low, high = _t_interval(centre, se, df, level)
    return Difference(centre, low, high, int(min(xa.size, xb.size)), False, df, level)


@dataclass(frozen=True)
class SignedRank:
    """Wilcoxon signed-rank test of per-task differences against zero, two-sided.

    ``effect_size`` is the matched-pairs rank-biserial correlation (R+ − R−) / (R+ + R−) over the
    non-zero differences: +1 when every task favours ``a``, −1 when every task favours ``b``.
    """

    n: int
    """non-zero differences used"""
    n_zero: int
    statistic: float
    """scipy's statistic: min(R+, R−)"""
    p_value: float
    effect_size: float


def signed_rank_test(differences: Sequence[float]) -> SignedRank:
    """The test on one value per task (``a − b``); all-zero differences give p = 1 and r = 0."""
    from scipy import stats

    d = np.asarray([float(x) for x in differences], dtype=float)
    nonzero = d[d != 0]
    n_zero = int(d.size - nonzero.size)
    if nonzero.size == 0:
        return SignedRank(0, n_zero, 0.0, 1.0, 0.0)
    ranks = stats.rankdata(np.abs(nonzero))
    r_plus, r_minus = float(ranks[nonzero > 0].sum()), float(ranks[nonzero < 0].sum())
    result = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    effect = (r_plus - r_minus) / (r_plus + r_minus)
    return SignedRank(int(nonzero.size), n_zero, float(result.statistic), float(result.pvalue), effect)


def bootstrap_median(values: Sequence[float], level: float = 0.90, n_boot: int = 4000,
                     seed: int = 0) -> tuple[float, float, float]:
    """(median, low, high): the median of ``values`` and its percentile bootstrap interval at ``level``,
    resampling the values with replacement ``n_boot`` times (seeded, so a report is reproducible).

    With one value the interval is that value; with none, NaNs.
    """
    data = np.asarray([float(v) for v in values if math.isfinite(float(v))], dtype=float)
    if data.size == 0:
        return math.nan, math.nan, math.nan
    median = float(np.median(data))
    if data.size == 1:
        return median, median, median
    rng = np.random.default_rng(seed)
    samples = np.median(rng.choice(data, size=(n_boot, data.size), replace=True), axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return median, float(low), float(high)
