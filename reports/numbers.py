"""How numbers read in a report: one formatter per kind, shared by the template's filters and
the sentences of ``reports.prose`` (no Django: fixed formats, no locale)."""

from __future__ import annotations

import numbers
from typing import Any, TypeGuard

MISSING = "\N{EM DASH}"
# Below this a p-value prints as a bound: three decimals would print "0.000".
P_FLOOR = 0.001


def is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def fixed3(value: Any) -> str:
    """A number to 3 decimals with a true minus sign; anything else as text (missing: a dash)."""
    if not is_number(value):
        return MISSING if value is None or value == "" else str(value)
    return f"{float(value):.3f}".replace("-", "\N{MINUS SIGN}")


def p_value(value: Any) -> str:
    """``p = 0.048``, ``p < 0.001`` (never ``p = 0.000``), or ``p not computed``."""
    if not is_number(value):
        return "p not computed"
    if value < P_FLOOR:
        return f"p < {P_FLOOR:.3f}"
    return f"p = {min(float(value), 1.0):.3f}"


def interval_range(lower: Any, upper: Any) -> str:
    """``0.781–0.903``; ``−0.139 to 0.251`` (an en dash after a negative bound reads as a second
    minus sign); empty when a bound is missing."""
    if not (is_number(lower) and is_number(upper)):
        return ""
    separator = " to " if lower < 0 else "\N{EN DASH}"
    return f"{fixed3(lower)}{separator}{fixed3(upper)}"


def level_label(level: Any) -> str:
    level = level if is_number(level) and 0 < level < 1 else 0.95
    return f"{float(level) * 100:g}% CI"
