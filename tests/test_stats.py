"""The statistics of ``compare`` against scipy and hand-computed values on fixed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from genft_search.stats import MIN_TASKS, bootstrap_median, difference_interval, mean_std, signed_rank_test

A = {1: 71.2, 2: 70.8, 3: 71.6, 4: 72.3}
B = {1: 70.1, 2: 70.9, 3: 70.2, 4: 71.0}


def test_mean_std_is_the_sample_std():
    s = mean_std([71.2, 70.8, 71.6])
    assert (s.mean, s.n) == (pytest.approx(71.2), 3)
    assert s.std == pytest.approx(0.4)  # deviations 0, -0.4, +0.4: variance 0.32 / 2
    assert str(s) == "71.20 ± 0.40"
    one = mean_std([5.0])
    assert one.mean == 5.0 and math.isnan(one.std) and str(one) == "5.00"
    assert mean_std([]).n == 0


def test_paired_interval_equals_scipy_ttest_rel():
    d = difference_interval(A, B)
    seeds = sorted(A)
    ci = sp.ttest_rel([A[s] for s in seeds], [B[s] for s in seeds]).confidence_interval(0.95)
    assert d.paired and d.n == 4 and d.df == 3
    assert d.mean == pytest.approx(sum(A[s] - B[s] for s in seeds) / 4)
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    # by hand: differences 1.1, -0.1, 1.4, 1.3; mean 0.925, t_{0.975, 3} = 3.182446
    diffs = [1.1, -0.1, 1.4, 1.3]
    sd = math.sqrt(sum((x - 0.925) ** 2 for x in diffs) / 3)
    assert d.high - d.mean == pytest.approx(3.182446305 * sd / 2, rel=1e-8)


def test_paired_on_the_common_seeds_only():
    d = difference_interval({**A, 9: 0.0}, {**B, 8: 100.0})
    assert d.paired and d.n == 4 and d.mean == pytest.approx(0.925)


def test_unmatched_seeds_use_welch_as_scipy():
    a = {1: 71.2, 2: 70.8, 3: 71.6}
    b = {7: 70.1, 8: 70.9, 9: 69.2, 10: 70.4}
    d = difference_interval(a, b)
    ci = sp.ttest_ind(list(a.values()), list(b.values()), equal_var=False).confidence_interval(0.95)
    assert not d.paired and d.n == 3
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert d.mean == pytest.approx(71.2 - 70.15)


def test_one_seed_gives_no_interval():
    d = difference_interval({42: 60.0}, {42: 58.5})
    assert d.mean == pytest.approx(1.5) and not d.has_interval and d.n == 1
    assert math.isnan(difference_interval({}, {1: 2.0}).mean)


def test_signed_rank_on_fixed_numbers():
    r = signed_rank_test([1, 2, 3, 4, 5, 6])
    assert r.p_value == pytest.approx(2 / 2**6) and r.effect_size == 1.0 and r.statistic == 0
    d = [1.0, -2.0, 3.0, 4.0, 5.0, 6.0, 0.5]
    r = signed_rank_test(d)
    ref = sp.wilcoxon(d)
    assert (r.statistic, r.p_value) == (pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    # ranks of |d|: 0.5->1, 1->2, 2->3, 3->4, 4->5, 5->6, 6->7; R- = 3, R+ = 25
    assert r.effect_size == pytest.approx((25 - 3) / 28) and r.statistic == 3


def test_signed_rank_drops_zeros_and_handles_ties_as_scipy():
    d = [0.0, 1.5, -1.5, 2.0, 3.0, 0.0, 4.0, -0.5]
    r = signed_rank_test(d)
    ref = sp.wilcoxon(d, zero_method="wilcox")
    assert (r.n, r.n_zero) == (6, 2)
    assert r.p_value == pytest.approx(ref.pvalue) and r.statistic == pytest.approx(ref.statistic)
    ranks = sp.rankdata([abs(x) for x in d if x])
    plus = sum(k for k, x in zip(ranks, [x for x in d if x]) if x > 0)
    assert r.effect_size == pytest.approx((plus - (21 - plus)) / 21)
    none = signed_rank_test([0.0, 0.0])
    assert (none.p_value, none.effect_size, none.n) == (1.0, 0.0, 0)


def test_six_tasks_is_the_least_that_can_reach_five_percent():
    assert sp.wilcoxon([1, 2, 3, 4, 5]).pvalue > 0.05
    assert signed_rank_test(range(1, MIN_TASKS + 1)).p_value < 0.05


def test_bootstrap_median_interval():
    values = [0.1, 0.4, 0.35, 0.2, 0.8, 0.3]
    median, low, high = bootstrap_median(values, level=0.90)
    assert median == pytest.approx(float(np.median(values)))
    assert min(values) <= low <= median <= high <= max(values) and low < high
    _, wide_low, wide_high = bootstrap_median(values, level=0.99)
    assert wide_low <= low and wide_high >= high  # a higher level, a wider interval
    assert bootstrap_median(values) == bootstrap_median(values)  # seeded: reports are reproducible
    assert bootstrap_median([0.5]) == (0.5, 0.5, 0.5)
    assert all(np.isnan(v) for v in bootstrap_median([]))
