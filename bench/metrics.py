"""Statistics engine benchmark: the full metric set for a large study against a naive
per-replicate scikit-learn loop.

Run from the repository root::

    .venv/bin/python bench/metrics.py [--cases 100000] [--replicates 2000]
        [--naive-replicates 50] [--seed 7] [--json PATH] [--check]

One run, no Django, on a synthetic study (seeded): `--cases` cases with a prevalence of about
20%, probability scores, and 6 subgroup attributes of 3 to 6 levels (sex with some unknown,
age band, site, scanner vendor, ethnicity with missing values, view).

- The fast path, as a validation run computes it: `validation.stats.evaluation.evaluate` with a
  plan of BCa bootstrap intervals (`--replicates`, overall and for every subgroup, six metrics
  with the AUC), calibration, Holm adjustment of two exploratory attributes, and acceptance
  and fairness criteria. Its total is the figure; a second pass times the steps one by one
  (point metrics, calibration, subgroup table and fairness, bootstrap), and the peak resident
  memory is printed.
- The baseline, a naive loop: for each replicate, resample positives and negatives with numpy,
  then compute sensitivity, specificity, PPV, NPV and accuracy from
  `sklearn.metrics.confusion_matrix` and the AUC from `roc_auc_score`, overall and for every
  subgroup level. It runs `--naive-replicates` replicates and is scaled linearly to
  `--replicates` (printed as scaled): the per-replicate cost does not depend on the count.
- The targets: the whole fast path under 30 s, and at least 20x faster than the naive loop.
  The speed-up is printed against the whole fast path (the target, conservative: the baseline
  does only the bootstrap) and against the bootstrap step alone.

Subgroups are grouped by fairlearn `MetricFrame` with one metric returning each group's 2x2
cells: fairlearn 0.15 converts a metric's arguments element by element (`np.stack` on a 1-D
column, ~0.2 s per metric at 100,000 cases), so one metric per attribute instead of ten
took that step from ~80 s to a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
from sklearn.metrics import confusion_matrix, roc_auc_score  # noqa: E402

from validation.stats.evaluation import Plan, evaluate  # noqa: E402
from validation.stats.metrics import binary_metrics  # noqa: E402
from validation.stats.metrics.bootstrap import bootstrap_subgroup_metrics  # noqa: E402
from validation.stats.metrics.calibration import calibration_summary  # noqa: E402
from validation.stats.metrics.subgroups import subgroup_results  # noqa: E402

TARGET_SECONDS = 30.0
TARGET_SPEEDUP = 20.0
THRESHOLD = 0.5
ATTRIBUTES = {  # name: (levels, probabilities); None is a missing value
    "sex": (["F", "M", None], [0.49, 0.49, 0.02]),
    "age_band": (["18-39", "40-59", "60-69", "70-79", "80+"], [0.2, 0.3, 0.2, 0.2, 0.1]),
    "site": (["A", "B", "C", "D"], [0.4, 0.3, 0.2, 0.1]),
    "vendor": (["GE", "Philips", "Siemens", "Canon"], [0.3, 0.3, 0.3, 0.1]),
    "ethnicity": (["a", "b", "c", "d", "e", None], [0.4, 0.2, 0.15, 0.1, 0.1, 0.05]),
    "view": (["PA", "AP", "LAT"], [0.5, 0.3, 0.2]),
}


def synthetic_study(cases: int, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Labels, calibrated-ish probability scores and subgroup attributes; the model is a
    little worse for some sites and views so subgroups differ."""
    rng = np.random.default_rng(seed)
    groups = {
        name: rng.choice(np.array(levels, dtype=object), size=cases, p=probabilities)
        for name, (levels, probabilities) in ATTRIBUTES.items()
    }
    y = (rng.uniform(size=cases) < 0.2).astype(np.int8)
    separation = 1.8 - 0.6 * (groups["site"] == "D") - 0.4 * (groups["view"] == "LAT")
    logit = rng.normal(size=cases) + separation * y - 1.6
    scores = 1.0 / (1.0 + np.exp(-logit))
    return y, scores, groups


def fast_path(y, scores, groups, replicates: int, seed: int) -> dict:
    """The full metric set exactly as a validation run stores it: `evaluation.evaluate` with a
    protocol planning BCa bootstrap intervals, calibration, multiplicity adjustment of the
    exploratory attributes and acceptance and fairness criteria."""
    plan = Plan(
        threshold=THRESHOLD,
        min_cell=10,
        bootstrap_replicates=replicates,
        bootstrap_seed=seed,
        exploratory=frozenset({"ethnicity", "view"}),
        acceptance_criteria=[
            {"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.8},
            {"metric": "sensitivity", "bound": "lower", "comparator": ">=", "value": 0.7},
        ],
        fairness_criteria=[
            {
                "attribute": "site",
                "metric": "tpr_difference",
                "bound": "upper",
                "comparator": "<=",
                "value": 0.1,
            },
        ],
    )
    return evaluate(y, scores, groups, plan)


def breakdown(y, scores, groups, replicates: int, seed: int) -> dict[str, float]:
    """The same steps timed one by one (a second pass, for where the time goes)."""
    steps = {}

    def timed(name, function, *args, **kwargs):
        started = time.perf_counter()
        function(*args, **kwargs)
        steps[name] = time.perf_counter() - started

    timed("point metrics, Wilson, DeLong", binary_metrics, y, scores, THRESHOLD)
    timed("calibration summary", calibration_summary, y, scores)
    timed("subgroup table + fairness (MetricFrame)", subgroup_results, y, scores, THRESHOLD, groups)
    timed(
        f"bootstrap BCa x{replicates}, overall + subgroups",
        bootstrap_subgroup_metrics,
        y,
        scores,
        THRESHOLD,
        groups,
        seed=seed,
        replicates=replicates,
    )
    return steps


def naive_replicate(y, scores, masks, rng) -> list[float]:
    """One replicate the obvious way: resample, then scikit-learn per unit."""
    positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    index = np.r_[rng.choice(positives, positives.size), rng.choice(negatives, negatives.size)]
    y_b, s_b = y[index], scores[index]
    values = []
    for mask in masks:
        unit = mask[index]
        y_u, s_u = y_b[unit], s_b[unit]
        tn, fp, fn, tp = confusion_matrix(y_u, s_u >= THRESHOLD, labels=[0, 1]).ravel()
        with np.errstate(divide="ignore", invalid="ignore"):
            values += [tp / (tp + fn), tn / (tn + fp), tp / (tp + fp), tn / (tn + fn)]
        values.append((tp + tn) / y_u.size)
        values.append(roc_auc_score(y_u, s_u) if 0 < y_u.sum() < y_u.size else np.nan)
    return values


def naive_loop(y, scores, groups, replicates: int, seed: int) -> float:
    masks = [np.ones(y.size, dtype=bool)]
    for values in groups.values():
        labels = np.array(["unknown" if v is None else v for v in values])
        masks += [labels == level for level in np.unique(labels)]
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for _ in range(replicates):
        naive_replicate(y, scores, masks, rng)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--naive-replicates", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0))
    y, scores, groups = synthetic_study(args.cases, args.seed)
    levels = sum(len(set(map(str, values))) for values in groups.values())
    print(
        f"{args.cases} cases ({int(y.sum())} positive), {len(groups)} attributes with "
        f"{levels} levels, {args.replicates} replicates, {cores} cores available"
    )

    print("fast path (evaluation.evaluate, as a run computes it):")
    started = time.perf_counter()
    sections = fast_path(y, scores, groups, args.replicates, args.seed)
    fast = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    auc = sections["bootstrap"]["overall"]["auc"]
    print(
        f"  overall AUC {sections['primary']['auc']['estimate']:.4f}; bootstrap BCa "
        f"[{auc['lower']:.4f}, {auc['upper']:.4f}]; {len(sections['bootstrap']['subgroups'])} "
        f"subgroups with 6 bootstrap intervals each; verdict {sections['acceptance']['verdict']}"
    )
    print(f"  {'total':45s} {fast:7.2f} s (peak resident memory {peak_mib:.0f} MiB)")
    steps = breakdown(y, scores, groups, args.replicates, args.seed)
    for name, seconds in steps.items():
        print(f"  - {name:43s} {seconds:7.2f} s")

    print(f"naive loop: {args.naive_replicates} replicates ...")
    measured = naive_loop(y, scores, groups, args.naive_replicates, args.seed)
    naive = measured * args.replicates / args.naive_replicates
    print(
        f"  {measured:.2f} s for {args.naive_replicates} replicates, scaled linearly to "
        f"{args.replicates}: {naive:.1f} s (scaled, not measured)"
    )

    bootstrap = next(seconds for name, seconds in steps.items() if name.startswith("bootstrap"))
    speedup = naive / fast
    meets_time, meets_speedup = fast < TARGET_SECONDS, speedup >= TARGET_SPEEDUP
    print(
        f"fast path {fast:.2f} s: {'meets' if meets_time else 'MISSES'} the "
        f"<{TARGET_SECONDS:.0f} s target"
    )
    print(
        f"speed-up naive/fast path {speedup:.1f}x: {'meets' if meets_speedup else 'MISSES'} the "
        f">={TARGET_SPEEDUP:.0f}x target (bootstrap step alone: {naive / bootstrap:.1f}x)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "bench/metrics.py",
                    "date": time.strftime("%Y-%m-%d"),
                    "machine": f"{platform.machine()}, {cores} cores available",
                    "cases": args.cases,
                    "replicates": args.replicates,
                    "fast_steps_s": steps,
                    "fast_total_s": fast,
                    "peak_rss_mib": peak_mib,
                    "naive_measured_s": measured,
                    "naive_replicates": args.naive_replicates,
                    "naive_scaled_s": naive,
                    "speedup": speedup,
                    "speedup_bootstrap_step": naive / bootstrap,
                    "targets": {"seconds": TARGET_SECONDS, "speedup": TARGET_SPEEDUP},
                },
                indent=2,
            )
        )
    return 1 if args.check and not (meets_time and meets_speedup) else 0


if __name__ == "__main__":
    sys.exit(main())
