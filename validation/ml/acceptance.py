"""Evaluating a protocol's pre-registered acceptance criteria against measured intervals."""

import operator

COMPARATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def evaluate_criteria(criteria: list[dict], intervals: dict[str, dict]) -> list[dict]:
    """Each criterion names a metric, which bound of its interval to use (estimate, lower,
    upper), a comparator and a value. A metric that could not be computed fails."""
    results = []
    for criterion in criteria:
        interval = intervals.get(criterion["metric"]) or {}
        observed = interval.get(criterion["bound"])
        passed = observed is not None and COMPARATORS[criterion["comparator"]](
            observed, criterion["value"]
        )
        bound = {
            "lower": "lower 95% bound of",
            "upper": "upper 95% bound of",
            "estimate": "point estimate of",
        }[criterion["bound"]]
        metric = criterion["metric"]
        shown = metric.upper() if metric in {"auc", "ppv", "npv"} else metric
        name = f"{bound} {shown} {criterion['comparator']} {criterion['value']:g}"
        results.append(
            {
                **criterion,
                "name": name[0].upper() + name[1:],
                "observed": observed,
                "passed": bool(passed),
                "method": interval.get("method", ""),
            }
        )
    return results


def bin_label(value, bins: list[float]) -> str | None:
    """Numeric attribute to its pre-registered band, e.g. bins [18, 40, 65, 120] -> '40-64'."""
    if value is None:
        return None
    for low, high in zip(bins, bins[1:], strict=False):
        if low <= value < high:
            return f"{low:g}-{high - 1:g}" if float(high).is_integer() else f"{low:g}-<{high:g}"
    return None
