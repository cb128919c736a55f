"""Evaluating a protocol's pre-registered acceptance criteria against measured intervals."""

import math
import operator

COMPARATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


def evaluate_criteria(
    criteria: list[dict], intervals: dict[str, dict], *, level: float = 0.95, subject: str = ""
) -> list[dict]:
    """Each criterion names a metric, which bound of its interval to use (estimate, lower,
    upper), a comparator and a value. A metric that could not be computed, or a bound its
    method does not give (a point estimate has no interval), fails; `note` says why. Each
    result keeps the criterion, the observed number, the method and a readable name."""
    results = []
    percent = f"{level * 100:g}%"
    for criterion in criteria:
        interval = intervals.get(criterion["metric"]) or {}
        observed = interval.get(criterion["bound"])
        if observed is not None and isinstance(observed, float) and math.isnan(observed):
            observed = None
        passed = observed is not None and COMPARATORS[criterion["comparator"]](
            observed, criterion["value"]
        )
        bound = {
            "lower": f"lower {percent} bound of",
            "upper": f"upper {percent} bound of",
            "estimate": "point estimate of",
        }[criterion["bound"]]
        metric = criterion["metric"]
        shown = metric.upper() if metric in {"auc", "ppv", "npv"} else metric.replace("_", " ")
        name = f"{subject}{bound} {shown} {criterion['comparator']} {criterion['value']:g}"
        note = ""
        if observed is None:
            note = (
                f"{shown} could not be computed"
                if not interval
                else f"{interval.get('method') or 'its method'} gives no {criterion['bound']}"
            )
        results.append(
            {
                **criterion,
                "name": name[0].upper() + name[1:],
                "observed": observed,
                "passed": bool(passed),
                "method": interval.get("method", ""),
                "interval": {
                    key: _finite(interval.get(key)) for key in ("estimate", "lower", "upper")
                }
                | {"level": interval.get("level", level)},
                "note": note,
            }
        )
    return results


def _finite(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def bin_label(value, bins: list[float]) -> str | None:
    """Numeric attribute to its pre-registered band, e.g. bins [18, 40, 65, 120] -> '40-64'."""
    if value is None:
        return None
    for low, high in zip(bins, bins[1:], strict=False):
        if low <= value < high:
            return f"{low:g}-{high - 1:g}" if float(high).is_integer() else f"{low:g}-<{high:g}"
    return None


def subgroup_values(values, spec: dict) -> list:
    """One protocol subgroup attribute's values, one per case, as the analysis groups them:
    numbers banded by the spec's ``bins`` (a number outside every band, or a non-number, is
    None, pooled as unknown); unbinned attributes as they are. Labels already banded pass
    through unchanged."""
    values = list(values)
    if spec.get("bins"):
        return [bin_label(v, spec["bins"]) if isinstance(v, int | float) else None for v in values]
    return values
