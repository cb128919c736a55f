"""McNemar's test and Newcombe's paired-difference interval against published values.

Plain pytest: no Django needed.
"""

import math

import numpy as np
import pytest

from validation.stats.metrics import MetricInputError
from validation.stats.metrics.paired import (
    EXACT_BELOW_DISCORDANT,
    MCNEMAR_CC,
    MCNEMAR_EXACT,
    NEWCOMBE_PAIRED,
    mcnemar,
    paired_proportion_difference,
)

# --- McNemar ------------------------------------------------------------------------------------


def test_mcnemar_bentur_example_of_fagerland_2013():
    # Fagerland, Lydersen & Laake, BMC Med Res Methodol 2013;13:91, Table 1 (Bentur et al.
    # 2009: airway hyper-responsiveness before/after stem cell transplantation, 21 children,
    # discordant pairs 1 and 7): exact conditional p = 2 * binomcdf(1, 8, 0.5) = 18/256
    # = 0.0703 (the paper's 0.070), chi-square with continuity correction 3.125, p = 0.077
    # (R 4.2.2: mcnemar.test(matrix(c(1, 7, 1, 12), 2)) -> 3.125, p-value = 0.0771).
    result = mcnemar(1, 7)
    assert result["exact_p_value"] == pytest.approx(18 / 256, abs=1e-15)
    assert result["statistic"] == pytest.approx(3.125, abs=1e-12)
    assert result["chi_square_p_value"] == pytest.approx(0.07709987174354202, abs=1e-12)
    # 8 discordant pairs: the exact p-value is the primary one.
    assert result["p_value"] == result["exact_p_value"]
    assert result["method"] == MCNEMAR_EXACT
    assert result["discordant"] == [1, 7]


def test_mcnemar_cavo_example_matches_r():
    # Fagerland et al. 2013, Table 2 (Cavo et al. 2012: complete response before/after
    # consolidation therapy, discordant pairs 6 and 16). R 4.2.2:
    # mcnemar.test(matrix(c(59, 16, 6, 80), 2)) -> 3.6818, p-value = 0.05501;
    # binom.test(6, 22)$p.value -> 0.05247879.
    result = mcnemar(6, 16)
    assert result["statistic"] == pytest.approx(3.6818181818, abs=1e-9)
    assert result["chi_square_p_value"] == pytest.approx(0.05501, abs=5e-6)
    assert result["exact_p_value"] == pytest.approx(0.05247879, abs=5e-9)


def test_mcnemar_presidential_approval_of_agresti():
    # Agresti, Categorical Data Analysis (the example of R's ?mcnemar.test): approval of the
    # President in two surveys, 794 / 150 / 86 / 570. McNemar's chi-squared = 16.818, df = 1,
    # p-value = 4.115e-05 (R 4.2.2). 236 discordant pairs: the chi-square p is the primary.
    result = mcnemar(150, 86)
    assert result["statistic"] == pytest.approx(16.818, abs=5e-4)
    assert result["p_value"] == pytest.approx(4.115e-05, abs=5e-9)
    assert result["method"] == MCNEMAR_CC
    assert result["exact_p_value"] < result["p_value"]


def test_mcnemar_switches_to_chi_square_at_25_discordant_pairs():
    below = mcnemar(8, EXACT_BELOW_DISCORDANT - 1 - 8)
    at = mcnemar(8, EXACT_BELOW_DISCORDANT - 8)
    assert below["method"] == MCNEMAR_EXACT and below["p_value"] == below["exact_p_value"]
    assert at["method"] == MCNEMAR_CC and at["p_value"] == at["chi_square_p_value"]


def test_mcnemar_is_symmetric_and_no_discordance_is_no_evidence():
    assert mcnemar(3, 11)["p_value"] == mcnemar(11, 3)["p_value"]
    for b, c in [(0, 0), (5, 5), (40, 40)]:
        result = mcnemar(b, c)
        assert result["p_value"] == 1.0 and result["statistic"] == 0.0
    assert mcnemar(0, 30)["exact_p_value"] == pytest.approx(2 * 0.5**30, rel=1e-12)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None, True])
def test_mcnemar_refuses_non_counts(bad):
    with pytest.raises(MetricInputError):
        mcnemar(bad, 3)


# --- Newcombe's paired interval -----------------------------------------------------------------

# Newcombe RG, Stat Med 1998;17:2635-2650, Table II, method 10 (95%), cells e, f, g, h =
# both, first only, second only, neither; the paper's difference is first minus second, so
# ours (second minus first) is its negation: [-upper, -lower]. The same four examples are the
# published values checked by the R package propint (ci.two.dep.props, Papenberg).
NEWCOMBE_TABLE_II = [
    ((36, 12, 2, 0), 0.0569, 0.3404),
    ((18, 12, 2, 18), 0.0562, 0.3290),
    ((53, 0, 0, 1), -0.0729, 0.0729),
    ((0, 30, 0, 0), 0.8395, 1.0),
]


@pytest.mark.parametrize(("cells", "lower", "upper"), NEWCOMBE_TABLE_II)
def test_paired_difference_reproduces_newcombe_1998_table_ii(cells, lower, upper):
    both, first_only, second_only, neither = cells
    result = paired_proportion_difference(*cells)
    n = sum(cells)
    assert result["estimate"] == pytest.approx((second_only - first_only) / n)
    assert result["lower"] == pytest.approx(-upper, abs=5e-5)
    assert result["upper"] == pytest.approx(-lower, abs=5e-5)
    assert result["method"] == NEWCOMBE_PAIRED and result["level"] == 0.95


def test_paired_difference_swapping_the_raters_negates_the_interval():
    forward = paired_proportion_difference(20, 7, 3, 10)
    backward = paired_proportion_difference(20, 3, 7, 10)
    assert backward["estimate"] == pytest.approx(-forward["estimate"])
    assert (backward["lower"], backward["upper"]) == pytest.approx(
        (-forward["upper"], -forward["lower"])
    )


def test_paired_difference_phi_narrows_the_interval_when_ratings_agree():
    # Strong agreement (large both and neither) with the same marginals and discordance as
    # weaker agreement: a positive phi must give the narrower interval.
    agreeing = paired_proportion_difference(40, 5, 10, 45)
    wide = paired_proportion_difference(0, 45, 50, 5)
    assert agreeing["estimate"] == pytest.approx(0.05)
    assert agreeing["upper"] - agreeing["lower"] < wide["upper"] - wide["lower"]


def test_paired_difference_level_widens_and_empty_table_is_undefined():
    narrow = paired_proportion_difference(20, 7, 3, 10, level=0.90)
    wide = paired_proportion_difference(20, 7, 3, 10, level=0.99)
    assert wide["lower"] < narrow["lower"] and wide["upper"] > narrow["upper"]
    assert wide["level"] == 0.99
    empty = paired_proportion_difference(0, 0, 0, 0)
    assert all(math.isnan(empty[key]) for key in ("estimate", "lower", "upper"))
    with pytest.raises(MetricInputError):
        paired_proportion_difference(1, 2, 3, 4, level=1.0)


@pytest.mark.parametrize(
    ("n", "probabilities"),
    [
        (40, (0.7, 0.1, 0.15, 0.05)),
        (40, (0.8, 0.02, 0.1, 0.08)),  # few discordant pairs
        (100, (0.3, 0.2, 0.1, 0.4)),
        (100, (0.4, 0.05, 0.05, 0.5)),  # no true difference
    ],
)
def test_paired_difference_covers_in_a_seeded_simulation(n, probabilities):
    """Newcombe reports method 10 close to nominal, slightly conservative where discordant
    pairs are rare; 1,000 seeded paired tables per cell (measured: 0.95-0.985)."""
    rng = np.random.default_rng(20261208)
    true = probabilities[2] - probabilities[1]
    covered = 0
    for cells in rng.multinomial(n, probabilities, size=1000):
        result = paired_proportion_difference(*(int(c) for c in cells))
        covered += result["lower"] <= true <= result["upper"]
    assert 0.935 <= covered / 1000 <= 0.99
