"""Stratified bootstrap: replicates against scikit-learn on explicitly resampled arrays, BCa
against scipy.stats.bootstrap, the closed-form jackknife against explicit leave-one-out, and
the edge cases."""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import confusion_matrix, roc_auc_score

from validation.stats.metrics import MetricInputError, auc_delong, binary_metrics, wilson_interval
from validation.stats.metrics.bootstrap import (
    METRICS,
    _design,
    _statistics,
    _weights,
    bca_bounds,
    bootstrap_disparities,
    bootstrap_distributions,
    bootstrap_indices,
    bootstrap_metrics,
    bootstrap_subgroup_metrics,
    jackknife_acceleration,
    percentile_bounds,
)

THRESHOLD = 0.5


def study(seed, n=240, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.4).astype(int)
    scores = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.3 * y - 0.6)))
    if ties:
        scores = np.round(scores, 1)
    groups = {
        "sex": rng.choice(["F", "M"], size=n),
        "site": rng.choice(
            np.array(["a", "b", "c", None], dtype=object), size=n, p=[0.4, 0.3, 0.25, 0.05]
        ),
    }
    return y, scores, groups


def unit_mask(groups, attribute, group, n):
    if attribute is None:
        return np.ones(n, dtype=bool)
    labels = np.array(["unknown" if v is None else str(v) for v in groups[attribute]])
    return labels == group


def first_indices(y, count, seed, **kwargs):
    return next(bootstrap_indices(y, replicates=count, seed=seed, chunk=count, **kwargs))


# --- replicates against explicit resampling ---------------------------------------------------


@pytest.mark.parametrize(("ties", "by_sex"), [(False, False), (True, False), (True, True)])
def test_auc_replicates_equal_sklearn_on_the_resampled_arrays(ties, by_sex):
    y, scores, groups = study(1, ties=ties)
    strata = groups["sex"] if by_sex else None
    dist = bootstrap_distributions(
        y, scores, THRESHOLD, seed=11, replicates=6, groups=groups, strata=strata
    )
    index = first_indices(y, 6, 11, strata=strata)
    checked = 0
    for b in range(6):
        for unit, (attribute, group) in enumerate(dist.units):
            mask = unit_mask(groups, attribute, group, y.size)[index[b]]
            y_b, s_b = y[index[b]][mask], scores[index[b]][mask]
            got = dist.replicates["auc"][b, unit]
            if 0 < y_b.sum() < y_b.size:
                assert got == pytest.approx(roc_auc_score(y_b, s_b), abs=1e-12)
                checked += 1
            else:
                assert math.isnan(got)
    assert checked >= 6 * 6


def test_proportion_replicates_equal_sklearn_confusion_matrix():
    y, scores, groups = study(2, ties=True)
    dist = bootstrap_distributions(y, scores, THRESHOLD, seed=5, replicates=4, groups=groups)
    index = first_indices(y, 4, 5)
    for b in range(4):
        for unit, (attribute, group) in enumerate(dist.units):
            mask = unit_mask(groups, attribute, group, y.size)[index[b]]
            y_b, predicted = y[index[b]][mask], scores[index[b]][mask] >= THRESHOLD
            tn, fp, fn, tp = confusion_matrix(y_b, predicted, labels=[0, 1]).ravel()
            expected = {
                "sensitivity": tp / (tp + fn),
                "specificity": tn / (tn + fp),
                "ppv": tp / (tp + fp),
                "npv": tn / (tn + fn),
                "accuracy": (tp + tn) / y_b.size,
            }
            for metric, value in expected.items():
                assert dist.replicates[metric][b, unit] == pytest.approx(value, abs=1e-15)


def test_heavily_repeated_cases_are_counted_exactly():
    # A case drawn more than 127 times moves the weights from int8 to int32.
    y, scores, groups = study(17, ties=True)
    design = _design(y, scores, THRESHOLD, groups, None, METRICS)
    index = np.tile(np.arange(y.size, dtype=np.int32), (2, 1))
    index[0, :200] = 0  # the first case in stratum order (a negative) drawn 200 times
    weights = _weights(index)
    assert weights.dtype == np.int32 and weights.max() == 200
    values = _statistics(weights, design)
    row = design.y[index[0]], design.scores[index[0]]
    assert values["auc"][0, 0] == pytest.approx(roc_auc_score(*row), abs=1e-12)
    assert values["specificity"][0, 0] == pytest.approx(
        np.mean(row[1][row[0] == 0] < THRESHOLD), abs=1e-15
    )


def test_estimates_equal_the_point_metrics():
    y, scores, groups = study(3)
    dist = bootstrap_distributions(y, scores, THRESHOLD, seed=1, replicates=2, groups=groups)
    point = binary_metrics(y, scores, THRESHOLD)
    for metric in ("sensitivity", "specificity", "ppv", "npv", "accuracy", "auc"):
        assert dist.estimates[metric][0] == pytest.approx(point[metric].estimate, abs=1e-15)
    site_b = dist.units.index(("site", "b"))
    mask = unit_mask(groups, "site", "b", y.size)
    assert dist.estimates["auc"][site_b] == pytest.approx(auc_delong(y[mask], scores[mask]).auc)
    assert dist.sizes[site_b].tolist() == [mask.sum(), y[mask].sum(), (y[mask] == 0).sum()]


def test_units_follow_subgroup_table_order_with_unknown_last():
    y, scores, groups = study(4)
    dist = bootstrap_distributions(y, scores, THRESHOLD, seed=1, replicates=2, groups=groups)
    assert dist.units == [
        (None, None),
        ("sex", "F"),
        ("sex", "M"),
        ("site", "a"),
        ("site", "b"),
        ("site", "c"),
        ("site", "unknown"),
    ]


# --- resampling ------------------------------------------------------------------------------


def test_resampling_is_stratified_by_class_and_by_strata():
    y, _, groups = study(5)
    index = first_indices(y, 50, 3)
    assert all((y[row] == y).all() for row in index)
    sex = groups["sex"]
    index = first_indices(y, 50, 3, strata=sex)
    assert all((y[row] == y).all() and (sex[row] == sex).all() for row in index)


def test_same_seed_gives_identical_results_and_another_seed_does_not():
    y, scores, groups = study(6)
    kwargs = {"replicates": 40, "groups": groups}
    first = bootstrap_distributions(y, scores, THRESHOLD, seed=123, **kwargs)
    again = bootstrap_distributions(y, scores, THRESHOLD, seed=123, **kwargs)
    other = bootstrap_distributions(y, scores, THRESHOLD, seed=124, **kwargs)
    for metric in METRICS:
        np.testing.assert_array_equal(first.replicates[metric], again.replicates[metric])
    assert not np.array_equal(first.replicates["auc"], other.replicates["auc"])
    intervals = bootstrap_metrics(y, scores, THRESHOLD, seed=123, replicates=40)
    assert intervals == bootstrap_metrics(y, scores, THRESHOLD, seed=123, replicates=40)


def test_results_do_not_depend_on_the_chunk_size():
    y, scores, groups = study(7)
    whole = bootstrap_distributions(y, scores, THRESHOLD, seed=9, replicates=30, groups=groups)
    pieces = bootstrap_distributions(
        y, scores, THRESHOLD, seed=9, replicates=30, groups=groups, chunk=7
    )
    for metric in METRICS:
        np.testing.assert_array_equal(whole.replicates[metric], pieces.replicates[metric])
    chunks = list(bootstrap_indices(y, replicates=30, seed=9, chunk=7))
    assert [len(chunk) for chunk in chunks] == [7, 7, 7, 7, 2]
    np.testing.assert_array_equal(np.vstack(chunks), first_indices(y, 30, 9))


# --- intervals -------------------------------------------------------------------------------


def test_percentile_interval_of_a_proportion_is_close_to_wilson():
    rng = np.random.default_rng(8)
    y = np.repeat([1, 0], 500)
    scores = np.where(y == 1, rng.uniform(size=1000) < 0.8, rng.uniform(size=1000) < 0.3)
    result = bootstrap_metrics(
        y, scores.astype(float), THRESHOLD, seed=2, method="percentile", metrics=["sensitivity"]
    )
    sensitivity = result["sensitivity"]
    wilson = wilson_interval(int(scores[y == 1].sum()), 500)
    assert sensitivity.estimate == wilson.estimate
    assert sensitivity.lower == pytest.approx(wilson.lower, abs=0.01)
    assert sensitivity.upper == pytest.approx(wilson.upper, abs=0.01)
    assert sensitivity.method == "Stratified bootstrap, percentile (B=2000, seed=2)"
    assert list(result) == ["sensitivity"]


def test_bca_matches_scipy_for_a_two_sample_auc():
    # scipy resamples each sample separately: a bootstrap stratified by class. Feeding its
    # replicates and this module's closed-form acceleration into bca_bounds must give its
    # interval.
    rng = np.random.default_rng(9)
    positives, negatives = np.round(rng.normal(1, 1, 35), 1), np.round(rng.normal(0, 1, 45), 1)

    def auc(pos, neg):
        greater = pos[:, np.newaxis] > neg[np.newaxis, :]
        return (greater + 0.5 * (pos[:, np.newaxis] == neg[np.newaxis, :])).mean()

    result = stats.bootstrap(
        (positives, negatives),
        auc,
        vectorized=False,
        n_resamples=999,
        method="BCa",
        rng=np.random.default_rng(1),
    )
    y, scores = np.r_[np.ones(35), np.zeros(45)], np.r_[positives, negatives]
    dist = bootstrap_distributions(y, scores, 0.0, seed=1, replicates=2, metrics=["auc"])
    estimate = auc(positives, negatives)
    lower, upper = bca_bounds(estimate, result.bootstrap_distribution, dist.accelerations["auc"][0])
    assert (lower, upper) == pytest.approx(
        (result.confidence_interval.low, result.confidence_interval.high), abs=1e-12
    )


def test_bca_matches_scipy_for_a_one_sample_mean():
    x = (np.random.default_rng(10).uniform(size=120) < 0.85).astype(float)
    result = stats.bootstrap((x,), np.mean, n_resamples=1999, rng=np.random.default_rng(2))
    leave_one_out = (x.sum() - x) / (x.size - 1)
    acceleration = jackknife_acceleration(leave_one_out)
    lower, upper = bca_bounds(x.mean(), result.bootstrap_distribution, acceleration)
    assert (lower, upper) == pytest.approx(
        (result.confidence_interval.low, result.confidence_interval.high), abs=1e-12
    )


def test_percentile_bounds_match_scipy():
    x = np.random.default_rng(11).exponential(size=60)
    result = stats.bootstrap(
        (x,), np.median, n_resamples=999, method="percentile", rng=np.random.default_rng(3)
    )
    assert percentile_bounds(result.bootstrap_distribution, level=0.95) == pytest.approx(
        (result.confidence_interval.low, result.confidence_interval.high), abs=1e-12
    )


@pytest.mark.parametrize("metric", ["sensitivity", "ppv", "accuracy", "auc"])
def test_closed_form_acceleration_equals_explicit_jackknife(metric):
    y, scores, groups = study(12, n=90, ties=True)
    dist = bootstrap_distributions(y, scores, THRESHOLD, seed=1, replicates=2, groups=groups)
    for unit in (0, dist.units.index(("site", "a"))):
        mask = unit_mask(groups, *dist.units[unit], y.size)
        leave_one_out = [
            explicit_metric(metric, y[keep & mask], scores[keep & mask])
            for keep in (np.arange(y.size) != i for i in range(y.size))
        ]
        expected = jackknife_acceleration(leave_one_out, strata=y)
        assert dist.accelerations[metric][unit] == pytest.approx(expected, abs=1e-12)
        assert expected != 0


def explicit_metric(metric, y, scores):
    predicted = scores >= THRESHOLD
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    if metric == "auc":
        return roc_auc_score(y, scores)
    return {"sensitivity": tp / (tp + fn), "ppv": tp / (tp + fp), "accuracy": (tp + tn) / y.size}[
        metric
    ]


def test_acceleration_is_zero_for_a_constant_jackknife():
    assert jackknife_acceleration([0.7] * 10, strata=[0] * 4 + [1] * 6) == 0.0
    # mean 4, U = 3 * (4 - theta_i) = (9, 6, 3, -18): a = (sum U^3 / 4^3) / 6 (sum U^2 / 4^2)^1.5
    expected = (-4860 / 64) / (6 * (450 / 16) ** 1.5)
    assert jackknife_acceleration([1.0, 2.0, 3.0, 10.0]) == pytest.approx(expected, abs=1e-15)


def test_subgroup_intervals_come_with_their_sizes():
    y, scores, groups = study(13, n=400)
    result = bootstrap_subgroup_metrics(y, scores, THRESHOLD, groups, seed=4, replicates=300)
    row = next(r for r in result["subgroups"] if (r["attribute"], r["group"]) == ("sex", "F"))
    female = np.asarray(groups["sex"]) == "F"
    assert (row["n"], row["n_pos"], row["n_neg"]) == (
        female.sum(),
        y[female].sum(),
        (y[female] == 0).sum(),
    )
    auc = row["auc"]
    assert auc.lower < auc.estimate < auc.upper
    assert auc.estimate == pytest.approx(roc_auc_score(y[female], scores[female]))
    assert auc.method == "Stratified bootstrap, BCa (B=300, seed=4)"
    assert set(result["overall"]) == set(METRICS)


# --- edge cases ------------------------------------------------------------------------------


def test_one_class_only_is_a_clear_error():
    with pytest.raises(MetricInputError, match="needs both classes"):
        bootstrap_metrics([1, 1, 1], [0.2, 0.6, 0.9], THRESHOLD, seed=1)


def test_n_of_n_sensitivity_gives_a_point_interval():
    y, scores, _ = study(14)
    scores = np.where(y == 1, 0.9, scores)
    dist = bootstrap_distributions(y, scores, THRESHOLD, seed=1, replicates=50)
    assert (dist.replicates["sensitivity"][:, 0] == 1.0).all()
    for method in ("bca", "percentile"):
        sensitivity = bootstrap_metrics(y, scores, THRESHOLD, seed=1, replicates=50, method=method)[
            "sensitivity"
        ]
        assert (sensitivity.estimate, sensitivity.lower, sensitivity.upper) == (1.0, 1.0, 1.0)


def test_all_equal_scores_give_auc_one_half_in_every_replicate():
    y = np.array([0, 1] * 30)
    dist = bootstrap_distributions(y, np.full(60, 0.3), THRESHOLD, seed=1, replicates=40)
    assert (dist.replicates["auc"][:, 0] == 0.5).all()
    auc = bootstrap_metrics(y, np.full(60, 0.3), THRESHOLD, seed=1, replicates=40)["auc"]
    assert (auc.estimate, auc.lower, auc.upper) == (0.5, 0.5, 0.5)


def test_replicates_where_a_metric_is_undefined_are_dropped_and_counted():
    y = np.array([0] * 30 + [1] * 30)
    scores = np.r_[np.full(29, 0.1), 0.9, np.full(30, 0.2)]  # one predicted positive, a FP
    dist = bootstrap_distributions(y, scores, THRESHOLD, seed=2, replicates=200)
    undefined = int(np.isnan(dist.replicates["ppv"][:, 0]).sum())
    assert 30 < undefined < 200  # P(case never drawn) = (29/30)^30, about 0.36
    ppv = bootstrap_metrics(y, scores, THRESHOLD, seed=2, replicates=200)["ppv"]
    assert ppv.method.endswith(f"{undefined} undefined replicate(s) dropped)")
    assert (ppv.estimate, ppv.lower, ppv.upper) == (0.0, 0.0, 0.0)


def test_group_with_one_class_has_undefined_sensitivity_and_auc():
    y, scores, groups = study(15)
    groups = {"cohort": np.where(y == 1, "cases", np.where(np.arange(y.size) % 2, "x", "y"))}
    result = bootstrap_subgroup_metrics(y, scores, THRESHOLD, groups, seed=1, replicates=30)
    row = next(r for r in result["subgroups"] if r["group"] == "x")
    assert row["n_pos"] == 0
    assert math.isnan(row["sensitivity"].estimate) and math.isnan(row["auc"].lower)
    assert not math.isnan(row["specificity"].estimate)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"seed": -1}, MetricInputError, "seed"),
        ({"seed": 1.5}, MetricInputError, "seed"),
        ({"seed": 1, "replicates": 1}, MetricInputError, "replicates"),
        ({"seed": 1, "metrics": ["f1"]}, ValueError, "Unknown metrics"),
        ({"seed": 1, "method": "bootstrap-t"}, ValueError, "Unknown bootstrap method"),
        ({"seed": 1, "level": 1.5}, MetricInputError, "Confidence level"),
    ],
)
def test_argument_errors(kwargs, error, match):
    y, scores, _ = study(16, n=40)
    with pytest.raises(error, match=match):
        bootstrap_metrics(y, scores, THRESHOLD, **{"replicates": 10, **kwargs})


# --- worst-case disparities ---------------------------------------------------------------------


def test_disparity_intervals_equal_fairlearn_on_every_resampled_replicate():
    """Each replicate's equalized-odds and demographic-parity differences equal fairlearn's own
    functions on the explicitly resampled arrays; the interval is their percentile range."""
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    y, scores, groups = study(21, n=900)
    site = np.array(["unknown" if v is None else v for v in groups["site"]])
    compared = {"site": ["a", "b", "c"]}  # "unknown" left out, as fairness_summary would
    replicates = 60
    dist = bootstrap_distributions(
        y,
        scores,
        THRESHOLD,
        seed=4,
        replicates=replicates,
        groups=groups,
        metrics=("sensitivity", "specificity", "selection_rate"),
    )
    index = first_indices(y, replicates, 4)
    predicted = (scores >= THRESHOLD).astype(int)
    eod, dpd = [], []
    for row in index:
        keep = np.isin(site[row], compared["site"])
        yb, pb, gb = y[row][keep], predicted[row][keep], site[row][keep]
        eod.append(equalized_odds_difference(yb, pb, sensitive_features=gb))
        dpd.append(demographic_parity_difference(yb, pb, sensitive_features=gb))
    result = bootstrap_disparities(dist, compared)["site"]
    for key, values in (("equalized_odds_difference", eod), ("demographic_parity_difference", dpd)):
        lower, upper = percentile_bounds(values)
        assert result[key].lower == pytest.approx(lower, abs=1e-12)
        assert result[key].upper == pytest.approx(upper, abs=1e-12)
        assert result[key].lower <= result[key].estimate <= result[key].upper
    keep = np.isin(site, compared["site"])
    assert result["equalized_odds_difference"].estimate == pytest.approx(
        equalized_odds_difference(y[keep], predicted[keep], sensitive_features=site[keep])
    )
    assert (
        "selection_rate"
        not in bootstrap_subgroup_metrics(y, scores, THRESHOLD, groups, seed=4, replicates=20)[
            "overall"
        ]
    )


def test_disparities_need_two_compared_groups():
    y, scores, groups = study(22)
    dist = bootstrap_distributions(
        y,
        scores,
        THRESHOLD,
        seed=1,
        replicates=20,
        groups=groups,
        metrics=("sensitivity", "specificity", "selection_rate"),
    )
    assert bootstrap_disparities(dist, {"sex": ["F"], "site": ["a", "b"]}).keys() == {"site"}
