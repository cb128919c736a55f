"""Holm and Benjamini-Hochberg adjustment and the two-proportion z-test, against statsmodels
and hand-computed values."""

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from validation.stats.metrics import MetricInputError
from validation.stats.metrics.multiplicity import (
    adjust,
    benjamini_hochberg,
    holm,
    two_proportion_p_value,
)

STATSMODELS_NAMES = {"holm": "holm", "bh": "fdr_bh"}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("method", ["holm", "bh"])
def test_adjustment_matches_statsmodels_on_random_p_values(seed, method):
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 2.0, size=int(rng.integers(2, 40)))
    expected = multipletests(p, method=STATSMODELS_NAMES[method])[1]
    np.testing.assert_allclose(adjust(p, method), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_adjustment_matches_statsmodels_with_ties_and_extremes(method):
    p = [0.01, 0.04, 0.01, 0.04, 0.2, 0.0, 1.0, 0.04, 0.5]
    expected = multipletests(p, method=STATSMODELS_NAMES[method])[1]
    np.testing.assert_allclose(adjust(p, method), expected, rtol=0, atol=1e-15)


def test_holm_hand_example():
    # Sorted: 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> running max 0.06.
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


def test_benjamini_hochberg_hand_example():
    # Sorted: 0.01 * 3/1 = 0.03, 0.03 * 3/2 = 0.045, 0.04 * 3/3 = 0.04 -> running min 0.04.
    np.testing.assert_allclose(benjamini_hochberg([0.01, 0.04, 0.03]), [0.03, 0.04, 0.04])


def test_adjusted_values_are_capped_at_one():
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]
    np.testing.assert_allclose(benjamini_hochberg([0.9, 0.95, 0.99]), [0.99] * 3)
    assert benjamini_hochberg([0.4, 0.45]).tolist() == [0.45, 0.45]
    np.testing.assert_allclose(holm([0.3, 0.6, 0.01]), [0.6, 0.6, 0.03])


@pytest.mark.parametrize("function", [holm, benjamini_hochberg])
def test_nan_is_passed_through_and_not_counted(function):
    with_missing = function([0.01, math.nan, 0.04, 0.03, math.nan])
    without = function([0.01, 0.04, 0.03])
    assert np.isnan(with_missing[[1, 4]]).all()
    np.testing.assert_array_equal(with_missing[[0, 2, 3]], without)


@pytest.mark.parametrize("function", [holm, benjamini_hochberg])
def test_adjustment_keeps_the_order_of_the_raw_p_values(function):
    p = np.random.default_rng(3).uniform(size=50)
    adjusted = function(p)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert np.all(adjusted >= p)


def test_input_is_not_modified_and_empty_input_is_fine():
    p = np.array([0.02, 0.01])
    holm(p)
    assert p.tolist() == [0.02, 0.01]
    assert holm([]).size == 0 and benjamini_hochberg([]).size == 0


def test_none_returns_the_checked_values():
    assert adjust([0.02, math.nan], "none")[0] == 0.02
    with pytest.raises(MetricInputError):
        adjust([1.5], "none")


@pytest.mark.parametrize("bad", [[-0.01], [1.01], [math.inf], [0.5, -math.inf]])
def test_p_values_outside_unit_interval_are_refused(bad):
    with pytest.raises(MetricInputError, match=r"\[0, 1\]"):
        holm(bad)


def test_shape_and_method_errors():
    with pytest.raises(MetricInputError, match="one-dimensional"):
        benjamini_hochberg([[0.1, 0.2]])
    with pytest.raises(MetricInputError, match="numeric"):
        holm(["a"])
    with pytest.raises(ValueError, match="Unknown multiplicity method"):
        adjust([0.1], "bonferroni")


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2"),
    [(45, 50, 30, 50), (8, 10, 70, 100), (1, 20, 0, 15), (120, 300, 130, 290), (5, 5, 3, 9)],
)
def test_two_proportion_p_value_matches_statsmodels(k1, n1, k2, n2):
    _, expected = proportions_ztest([k1, k2], [n1, n2])
    assert two_proportion_p_value(k1, n1, k2, n2) == pytest.approx(expected, abs=1e-14)
    assert two_proportion_p_value(k2, n2, k1, n1) == pytest.approx(expected, abs=1e-14)


def test_two_proportion_p_value_hand_value():
    # p1 = 0.6, p2 = 0.4, pooled 0.5: z = 0.2 / sqrt(0.25 * (1/50 + 1/50)) = 2 exactly.
    assert two_proportion_p_value(30, 50, 20, 50) == pytest.approx(0.0455002638963584, abs=1e-14)


def test_two_proportion_p_value_edges():
    assert math.isnan(two_proportion_p_value(0, 0, 3, 10))
    assert two_proportion_p_value(0, 10, 0, 12) == 1.0
    assert two_proportion_p_value(10, 10, 12, 12) == 1.0
    with pytest.raises(MetricInputError):
        two_proportion_p_value(11, 10, 1, 10)
