"""The disclosure rule on its own (issue 14, item 1): what a vendor or partner may read of a
run's numbers. The end-to-end check with a hostile model is tests/security/
test_result_exfiltration.py."""

from validation.stats.disclosure import (
    calibration_disclosed,
    comparison_disclosed,
    failures_disclosed,
    roc_disclosed,
    rounded,
    subgroups_disclosed,
)
from validation.stats.metrics import to_jsonable
from validation.stats.metrics.calibration import calibration_summary


def test_rounded_keeps_counts_and_cuts_every_float_to_the_printed_precision():
    value = {"a": [0.123456789, 2, True, None, "0.123456"], "b": {"c": -0.0000001, "d": 1e-9}}
    assert rounded(value) == {"a": [0.123, 2, True, None, "0.123456"], "b": {"c": 0.0, "d": 0.0}}
    assert str(rounded(-0.0001)) == "0.0"
    assert rounded(float("nan")) is None


def _calibration(y, p, bins=10):
    return to_jsonable(calibration_summary(y, p, n_bins=bins))


def test_a_small_calibration_bin_loses_its_numbers_and_takes_the_next_smallest_with_it():
    # bin 0: 12 cases, bin 5: 10 cases, bin 9: 1 case (its label would be disclosed).
    p = [0.05] * 12 + [0.55] * 10 + [0.95]
    y = [0] * 10 + [1] * 2 + [1] * 5 + [0] * 5 + [1]
    team = _calibration(y, p)
    assert [b["n"] for b in team["bins"]] == [12, 10, 1]
    vendor = calibration_disclosed(team, min_cell=5)
    bins = vendor["bins"]
    assert len(bins) == 10  # every bin listed: an empty bin looks like a small one
    shown = [b for b in bins if not b["suppressed"]]
    assert [(b["lower"], b["n"]) for b in shown] == [(0.0, 12)]  # 10 hidden as complement
    hidden = [b for b in bins if b["suppressed"]]
    assert all(set(b) == {"lower", "upper", "suppressed"} for b in hidden)
    assert vendor["n"] == 23 and vendor["min_cell"] == 5


def test_calibration_bins_at_or_above_the_minimum_keep_rounded_numbers():
    p = [0.1234567] * 6 + [0.8765432] * 6
    y = [0] * 5 + [1] + [1] * 5 + [0]
    vendor = calibration_disclosed(_calibration(y, p), min_cell=6)
    shown = [b for b in vendor["bins"] if not b["suppressed"]]
    assert [b["mean_predicted"] for b in shown] == [0.123, 0.877]
    assert [b["n"] for b in shown] == [6, 6]


def test_calibration_without_bins_is_only_rounded():
    section = {"note": "scores are not probabilities in [0, 1]: calibration not assessed"}
    assert calibration_disclosed(section, min_cell=10) == section


def test_a_single_small_subgroup_cell_takes_the_next_smallest_with_it():
    rows = [
        {"attribute": "sex", "group": "F", "n": 40, "suppressed": False, "prevalence": 0.41234},
        {"attribute": "sex", "group": "M", "n": 30, "suppressed": False, "prevalence": 0.5},
        {"attribute": "sex", "group": "X", "n": 2, "suppressed": True},
        {"attribute": "site", "group": "A", "n": 3, "suppressed": True},
        {"attribute": "site", "group": "B", "n": 4, "suppressed": True},
        {"attribute": "site", "group": "C", "n": 65, "suppressed": False},
    ]
    vendor = {(r["attribute"], r["group"]): r for r in subgroups_disclosed(rows, audience="vendor")}
    assert vendor[("sex", "X")] == {"attribute": "sex", "group": "X", "suppressed": True}
    assert vendor[("sex", "M")] == {"attribute": "sex", "group": "M", "suppressed": True}
    assert vendor[("sex", "F")]["prevalence"] == 0.412
    assert vendor[("site", "C")]["n"] == 65  # two small cells: their sum alone is disclosed
    assert subgroups_disclosed(rows, audience="team") == rows


def test_bootstrap_rows_follow_the_subgroup_table():
    table = [
        {"attribute": "sex", "group": "F", "n": 40, "suppressed": False},
        {"attribute": "sex", "group": "M", "n": 30, "suppressed": False},
        {"attribute": "sex", "group": "X", "n": 2, "suppressed": True},
    ]
    boot = [{"attribute": r["attribute"], "group": r["group"], "n": r["n"]} for r in table]
    shown = subgroups_disclosed(boot, audience="partner", table=table)
    assert [r.get("suppressed", False) for r in shown] == [False, True, True]


def test_the_roc_curve_steps_over_at_least_the_minimum_number_of_cases():
    # 10 positives, 10 negatives, every case its own step.
    tpr = [0.0, 0.1, 0.1, 0.2, 0.3, 0.3, 0.4, 0.5, 0.6, 0.6, 0.7, 0.8, 0.8, 0.9, 1.0, 1.0]
    fpr = [0.0, 0.0, 0.1, 0.1, 0.1, 0.2, 0.3, 0.3, 0.3, 0.5, 0.6, 0.6, 0.8, 0.9, 0.9, 1.0]
    roc = roc_disclosed({"fpr": fpr, "tpr": tpr}, n_pos=10, n_neg=10, min_cell=5)
    assert roc is not None
    cases = [round(t * 10) + round(f * 10) for f, t in zip(roc["fpr"], roc["tpr"], strict=True)]
    assert cases[0] == 0 and cases[-1] == 20
    assert all(b - a >= 5 for a, b in zip(cases, cases[1:], strict=False))
    assert len(cases) >= 3  # still a curve
    assert roc_disclosed(None, n_pos=0, n_neg=3, min_cell=5) is None


def test_the_label_split_of_a_few_failed_cases_is_withheld():
    failures = {"n_failed": 1, "n_failed_positive": 1, "n_failed_negative": 0, "by_category": []}
    shown = failures_disclosed(failures, min_cell=5)
    assert "n_failed_positive" not in shown and "n_failed_negative" not in shown
    assert shown["label_split_suppressed"] is True and shown["n_failed"] == 1
    many = {"n_failed": 12, "n_failed_positive": 6, "n_failed_negative": 6}
    assert failures_disclosed(many, min_cell=5) == many


def test_a_comparison_result_is_disclosed_as_the_comparison_report_prints_it():
    result = {
        "verdict": "pass",
        "n_paired": 79,
        "endpoints": [{"metric": "auc", "difference": {"estimate": 0.0123456, "lower": -0.04}}],
        "subgroups": [
            {"attribute": "site", "group": "A", "n": 4, "difference": 0.1234, "suppressed": True},
            {"attribute": "site", "group": "B", "n": 75, "difference": 0.0111111},
            {"attribute": "sex", "group": "F", "n": 40, "difference": 0.0222222},
            {"attribute": "sex", "group": "M", "n": 39, "difference": 0.0333333},
        ],
    }
    assert comparison_disclosed(result, audience="team") == result
    shown = comparison_disclosed(result, audience="vendor")
    assert shown["endpoints"][0]["difference"] == {"estimate": 0.012, "lower": -0.04}
    assert shown["n_paired"] == 79 and shown["verdict"] == "pass"
    # A's cell is small, and B alone is its complement: both keep only their names.
    assert shown["subgroups"][:2] == [
        {"attribute": "site", "group": "A", "suppressed": True},
        {"attribute": "site", "group": "B", "suppressed": True},
    ]
    assert shown["subgroups"][2]["difference"] == 0.022
