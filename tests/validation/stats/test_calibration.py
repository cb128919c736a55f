"""Calibration summary against statsmodels (logistic fits), scikit-learn (Brier score,
calibration curve) and hand-computed values."""

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import special
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from validation.stats.metrics import MetricInputError, wilson_interval
from validation.stats.metrics.calibration import (
    INTERCEPT_METHOD,
    SLOPE_METHOD,
    calibration_summary,
    reliability_bins,
)


def miscalibrated(seed, n=1500, shift=0.4, spread=1.6):
    """Outcomes from true risks; predictions shifted and over-spread on the logit scale."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(-0.5, 1.2, size=n)
    y = (rng.uniform(size=n) < special.expit(true_logit)).astype(int)
    return y, special.expit(shift + spread * true_logit)


def glm_fits(y, probs, level):
    logit = special.logit(np.clip(probs, 1e-12, 1 - 1e-12))
    family = sm.families.Binomial()
    slope_fit = sm.GLM(y, sm.add_constant(logit), family=family).fit(tol=1e-12)
    intercept_fit = sm.GLM(y, np.ones((y.size, 1)), family=family, offset=logit).fit(tol=1e-12)
    alpha = 1 - level
    return (
        (intercept_fit.params[0], *intercept_fit.conf_int(alpha)[0]),
        (slope_fit.params[1], *slope_fit.conf_int(alpha)[1]),
    )


@pytest.mark.parametrize(("seed", "level"), [(0, 0.95), (1, 0.95), (2, 0.9), (3, 0.99)])
def test_intercept_and_slope_match_statsmodels_glm(seed, level):
    y, probs = miscalibrated(seed)
    summary = calibration_summary(y, probs, level=level)
    (intercept, i_low, i_high), (slope, s_low, s_high) = glm_fits(y, probs, level)
    got_intercept, got_slope = summary["intercept"], summary["slope"]
    assert (got_intercept.estimate, got_intercept.lower, got_intercept.upper) == pytest.approx(
        (intercept, i_low, i_high), abs=1e-6
    )
    assert (got_slope.estimate, got_slope.lower, got_slope.upper) == pytest.approx(
        (slope, s_low, s_high), abs=1e-6
    )
    assert got_intercept.method == INTERCEPT_METHOD and got_slope.method == SLOPE_METHOD
    assert got_slope.level == level


def test_miscalibration_is_detected_in_the_right_direction():
    # Predictions too extreme (spread 1.6) and too high (shift +0.4): slope near 1/1.6 and a
    # negative calibration-in-the-large, neither interval containing the ideal value.
    summary = calibration_summary(*miscalibrated(4, n=5000))
    slope, intercept = summary["slope"], summary["intercept"]
    assert slope.upper < 1.0 and slope.lower < 1 / 1.6 < slope.upper
    assert intercept.upper < 0.0


def test_well_calibrated_predictions_have_intercept_zero_and_slope_one_inside():
    summary = calibration_summary(*miscalibrated(5, n=5000, shift=0.0, spread=1.0))
    assert summary["intercept"].lower < 0.0 < summary["intercept"].upper
    assert summary["slope"].lower < 1.0 < summary["slope"].upper
    assert summary["notes"] == []


@pytest.mark.parametrize("seed", range(3))
def test_brier_matches_sklearn(seed):
    y, probs = miscalibrated(seed, n=400)
    assert calibration_summary(y, probs)["brier"] == pytest.approx(
        brier_score_loss(y, probs), abs=1e-15
    )


@pytest.mark.parametrize(("seed", "n_bins"), [(0, 10), (1, 5), (2, 20), (3, 7)])
def test_reliability_bins_match_sklearn_calibration_curve(seed, n_bins):
    y, probs = miscalibrated(seed, n=300)
    bins = calibration_summary(y, probs, n_bins=n_bins)["bins"]
    prob_true, prob_pred = calibration_curve(y, probs, n_bins=n_bins, strategy="uniform")
    np.testing.assert_allclose([b["observed_fraction"] for b in bins], prob_true, atol=1e-15)
    np.testing.assert_allclose([b["mean_predicted"] for b in bins], prob_pred, atol=1e-15)
    assert sum(b["n"] for b in bins) == y.size
    for b in bins:
        assert b["lower"] <= b["mean_predicted"] <= b["upper"]
        assert b["observed_interval"] == wilson_interval(b["n_pos"], b["n"])
        assert b["observed_fraction"] == b["n_pos"] / b["n"]


def test_probability_on_an_inner_edge_falls_in_the_lower_bin_as_in_sklearn():
    y, probs = np.array([0, 1, 1, 0]), np.array([0.1, 0.2, 0.25, 0.0])
    bins = reliability_bins(y, probs, n_bins=10)
    assert [(b["lower"], b["upper"], b["n"]) for b in bins] == [
        (0.0, 0.1, 2),
        pytest.approx((0.1, 0.2, 1)),
        pytest.approx((0.2, 0.3, 1)),
    ]
    prob_true, _ = calibration_curve(y, probs, n_bins=10)
    assert [b["observed_fraction"] for b in bins] == prob_true.tolist()


def test_hand_computed_brier_and_ece():
    # Bins: {0.05} observed 0 -> gap 0.05; {0.15, 0.15} observed 0.5 -> gap 0.35;
    # {0.95} observed 1 -> gap 0.05. ECE = (0.05 + 2 * 0.35 + 0.05) / 4 = 0.2.
    summary = calibration_summary([0, 0, 1, 1], [0.05, 0.15, 0.15, 0.95])
    assert summary["ece"] == pytest.approx(0.2, abs=1e-15)
    assert summary["brier"] == pytest.approx((0.0025 + 0.0225 + 0.7225 + 0.0025) / 4, abs=1e-15)
    assert [b["n"] for b in summary["bins"]] == [1, 2, 1]
    assert (summary["n"], summary["n_pos"], summary["n_bins"]) == (4, 2, 10)


def test_ece_is_zero_when_every_bin_is_exactly_calibrated():
    y = [0, 0, 0, 1, 1, 1, 1, 0]
    probs = [0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75]
    assert calibration_summary(y, probs)["ece"] == 0.0


def test_probabilities_of_exactly_zero_and_one_are_clipped_for_the_logit():
    y, probs = miscalibrated(6, n=500)
    probs[:5], probs[5:10] = 0.0, 1.0
    summary = calibration_summary(y, probs)
    (intercept, *_), (slope, *_) = glm_fits(y, probs, 0.95)
    assert summary["intercept"].estimate == pytest.approx(intercept, abs=1e-6)
    assert summary["slope"].estimate == pytest.approx(slope, abs=1e-6)


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_keeps_brier_and_ece_and_leaves_intercept_and_slope_undefined(label):
    probs = [0.1, 0.4, 0.35, 0.8]
    summary = calibration_summary([label] * 4, probs)
    expected_brier = np.mean((np.array(probs) - label) ** 2)
    assert summary["brier"] == pytest.approx(expected_brier, abs=1e-15)
    assert summary["ece"] > 0
    for name in ("intercept", "slope"):
        assert math.isnan(summary[name].estimate) and math.isnan(summary[name].upper)
    assert summary["slope"].method == SLOPE_METHOD
    assert summary["notes"] == ["calibration intercept and slope undefined: one class only"]


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.PerfectSeparationWarning")
def test_separated_outcomes_leave_the_slope_undefined_with_a_note():
    y, probs = [0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    summary = calibration_summary(y, probs)
    assert math.isnan(summary["slope"].estimate)
    assert any("calibration slope undefined" in note for note in summary["notes"])
    (intercept, low, high), _ = glm_fits(np.array(y), np.array(probs), 0.95)
    got = summary["intercept"]
    assert (got.estimate, got.lower, got.upper) == pytest.approx((intercept, low, high), abs=1e-6)


@pytest.mark.parametrize("bad", [1.2, -0.01, math.nan, math.inf])
def test_scores_that_are_not_probabilities_are_refused(bad):
    with pytest.raises(MetricInputError, match="probs"):
        calibration_summary([0, 1, 1], [0.2, bad, 0.7])


def test_other_input_errors():
    with pytest.raises(MetricInputError, match=r"outside \[0, 1\]"):
        calibration_summary([0, 1], [0.5, 3.0])
    with pytest.raises(MetricInputError, match="differ in length"):
        calibration_summary([0, 1, 1], [0.2, 0.7])
    with pytest.raises(MetricInputError, match="at least one case"):
        calibration_summary([], [])
    with pytest.raises(MetricInputError, match="n_bins"):
        calibration_summary([0, 1], [0.2, 0.7], n_bins=0)
    with pytest.raises(MetricInputError, match="only 0 and 1"):
        calibration_summary([0, 2], [0.2, 0.7])
