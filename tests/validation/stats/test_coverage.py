"""Coverage simulations: the nominal 95% intervals must cover the true value in about 95% of
simulated studies (between 93% and 97% over thousands of studies, seeded so the test is
deterministic).

The binomial standard error of a coverage estimate from 4,000 studies is about 0.35
percentage points, so the 93-97% band allows for Monte Carlo noise while still failing an
interval that is systematically too narrow or too wide (e.g. Wald's at small n).
"""

import math

import numpy as np
import pytest
from scipy import stats

from validation.stats.metrics import auc_delong, wilson_interval

pytestmark = pytest.mark.slow

STUDIES = 4000


def test_wilson_interval_covers_true_sensitivity():
    true_sensitivity, n_pos = 0.85, 100
    rng = np.random.default_rng(20240601)
    true_positives = rng.binomial(n_pos, true_sensitivity, size=STUDIES)
    # One interval per possible count, then each study looks its own up.
    covers = np.array(
        [
            (ci := wilson_interval(k, n_pos)).lower <= true_sensitivity <= ci.upper
            for k in range(n_pos + 1)
        ]
    )
    coverage = covers[true_positives].mean()
    assert 0.93 <= coverage <= 0.97
    exact = stats.binom.pmf(np.arange(n_pos + 1), n_pos, true_sensitivity) @ covers
    assert coverage == pytest.approx(exact, abs=0.015)


def test_delong_interval_covers_true_binormal_auc():
    # Positives ~ N(d, 1), negatives ~ N(0, 1): the true AUC is Phi(d / sqrt(2)).
    separation, n_pos, n_neg = 1.0, 100, 100
    true_auc = stats.norm.cdf(separation / math.sqrt(2))
    rng = np.random.default_rng(20240602)
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    scores = rng.normal(size=(STUDIES, n_pos + n_neg)) + separation * y
    covered = 0
    for study in scores:
        ci = auc_delong(y, study).ci
        covered += ci.lower <= true_auc <= ci.upper
    assert 0.93 <= covered / STUDIES <= 0.97
