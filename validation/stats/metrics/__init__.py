"""Statistics engine for validation runs: pure numpy/scipy (and fairlearn for subgroups).

Conventions used throughout: label 1 is the positive class, a higher score means more likely
positive, and a case is predicted positive when ``score >= threshold``. Every interval names
its method so reports can print it. See each module for the papers the methods follow; the
tests reproduce published values (pROC's aSAH examples, the FDA 2007 guidance).
"""

from ._base import Interval, MetricInputError, as_labels, check_same_length, to_jsonable
from .binary import binary_metrics, confusion_counts
from .bootstrap import (
    BootstrapDistributions,
    bca_bounds,
    bootstrap_distributions,
    bootstrap_indices,
    bootstrap_metrics,
    bootstrap_subgroup_metrics,
    jackknife_acceleration,
    percentile_bounds,
)
from .calibration import calibration_summary, reliability_bins
from .multiplicity import adjust, benjamini_hochberg, holm, two_proportion_p_value
from .paired import mcnemar, paired_proportion_difference
from .proportions import (
    clopper_pearson_interval,
    likelihood_ratios,
    newcombe_difference_interval,
    proportion_interval,
    wilson_cc_interval,
    wilson_interval,
)
from .roc import (
    AucResult,
    PairedAucResult,
    auc_delong,
    auc_delong_many,
    delong_paired,
    hanley_mcneil_score_interval,
    roc_points,
)
from .subgroups import fairness_summary, group_labels, subgroup_table

__all__ = [
    "AucResult",
    "BootstrapDistributions",
    "Interval",
    "MetricInputError",
    "PairedAucResult",
    "adjust",
    "as_labels",
    "auc_delong",
    "auc_delong_many",
    "bca_bounds",
    "benjamini_hochberg",
    "binary_metrics",
    "bootstrap_distributions",
    "bootstrap_indices",
    "bootstrap_metrics",
    "bootstrap_subgroup_metrics",
    "calibration_summary",
    "check_same_length",
    "clopper_pearson_interval",
    "confusion_counts",
    "delong_paired",
    "fairness_summary",
    "group_labels",
    "hanley_mcneil_score_interval",
    "holm",
    "jackknife_acceleration",
    "likelihood_ratios",
    "mcnemar",
    "newcombe_difference_interval",
    "paired_proportion_difference",
    "percentile_bounds",
    "proportion_interval",
    "reliability_bins",
    "roc_points",
    "subgroup_table",
    "to_jsonable",
    "two_proportion_p_value",
    "wilson_cc_interval",
    "wilson_interval",
]
