"""The demo's comparison against R's pROC (issue 18, done when: `manage.py demo --compare`'s
paired values match pROC's `roc.test` on the same scores). The scores are the demo's own,
exported once (`manage.py demo --compare --export-scores`, seed 7, 240 cases) into
reference/demo_comparison_scores.csv; reference/demo_comparison_proc.R computed the values
below from that file."""

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from validation.management.commands.demo import COMPARISON, PROTOCOL
from validation.protocol_document import with_defaults
from validation.stats.comparison import evaluate_comparison

SCORES = Path(__file__).parent / "reference" / "demo_comparison_scores.csv"

# Printed by reference/demo_comparison_proc.R with R 4.2.2 and pROC 1.18.0.
PROC: dict[str, Any] = {
    "n_paired": 240,
    "auc_candidate": 0.817377645502645,
    "auc_baseline": 0.80406746031746,
    "z": 0.398336762452503,
    "p": 0.690381965261575,
    "difference_ci": (-0.0521808416281691, 0.0788012119985396),
}


def _read() -> dict:
    labels, baseline, candidate = [], [], []
    with SCORES.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            labels.append(int(row["label"]))
            baseline.append(float(row["baseline"]) if row["baseline"] else math.nan)
            candidate.append(float(row["candidate"]) if row["candidate"] else math.nan)
    return {
        "labels": np.array(labels),
        "baseline": np.array(baseline),
        "candidate": np.array(candidate),
    }


def test_the_demo_comparison_matches_proc_roc_test():
    scores = _read()
    result = evaluate_comparison(
        scores["labels"],
        scores["baseline"],
        scores["candidate"],
        threshold_baseline=0.5,
        threshold_candidate=0.5,
        groups={},
        plan={**with_defaults(PROTOCOL), "subgroups": [], "comparison": COMPARISON},
    )
    assert result["n_paired"] == PROC["n_paired"]
    auc = result["overall"]["auc"]
    assert auc["candidate"]["estimate"] == pytest.approx(PROC["auc_candidate"], abs=1e-6)
    assert auc["baseline"]["estimate"] == pytest.approx(PROC["auc_baseline"], abs=1e-6)
    difference = auc["difference"]
    assert difference["estimate"] == pytest.approx(
        PROC["auc_candidate"] - PROC["auc_baseline"], abs=1e-6
    )
    assert auc["test"]["statistic"] == pytest.approx(PROC["z"], abs=1e-6)
    assert auc["test"]["p_value"] == pytest.approx(PROC["p"], abs=1e-6)
    assert (difference["lower"], difference["upper"]) == pytest.approx(
        PROC["difference_ci"], abs=1e-6
    )
    assert difference["level"] == 0.95
