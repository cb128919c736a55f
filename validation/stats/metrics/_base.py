"""Shared pieces of the statistics engine: the error type, the interval record, input checks
and conversion of results to JSON-storable values."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats


class MetricInputError(ValueError):
    """The inputs cannot be scored: NaN/inf scores, mismatched lengths, labels outside {0, 1},
    or a statistic that is undefined for the data given (e.g. an AUC with one class only)."""


@dataclasses.dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided confidence interval and the name of the method.

    ``method`` is printed in reports next to the numbers, so it names the published method
    (e.g. "Wilson score", "DeLong (Sun & Xu 2014)"). Undefined estimates are NaN.
    """

    estimate: float
    lower: float
    upper: float
    method: str
    level: float = 0.95

    def as_dict(self) -> dict[str, Any]:
        return {
            "estimate": float(self.estimate),
            "lower": float(self.lower),
            "upper": float(self.upper),
            "method": self.method,
            "level": float(self.level),
        }

    @classmethod
    def undefined(cls, method: str, level: float = 0.95) -> Interval:
        return cls(math.nan, math.nan, math.nan, method, level)


def z_critical(level: float) -> float:
    """Two-sided standard normal quantile for a confidence level (1.959964... for 0.95)."""
    if not 0.0 < level < 1.0:
        raise MetricInputError(f"Confidence level must be strictly between 0 and 1, got {level!r}.")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def as_labels(y_true: Any, *, name: str = "y_true") -> np.ndarray:
    """Return ``y_true`` as a 1-D int8 array, refusing anything but 0/1 (or booleans)."""
    arr = np.asarray(y_true)
    if arr.ndim != 1:
        raise MetricInputError(f"{name} must be one-dimensional, got shape {arr.shape}.")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    try:
        as_float = arr.astype(float)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name} must contain only 0 and 1.") from None
    bad = ~np.isin(as_float, (0.0, 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MetricInputError(
            f"{name} must contain only 0 and 1; found {arr[first]!r} at index {first} "
            f"({int(bad.sum())} invalid value(s))."
        )
    return as_float.astype(np.int8)


def as_scores(scores: Any, *, name: str = "scores") -> np.ndarray:
    """Return ``scores`` as a 1-D float array, refusing NaN and infinite values."""
    try:
        arr = np.asarray(scores, dtype=float)
    except (TypeError, ValueError):
        raise MetricInputError(f"{name} must be numeric.") from None
    if arr.ndim != 1:
        raise MetricInputError(f"{name} must be one-dimensional, got shape {arr.shape}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise MetricInputError(
            f"{name} must be finite; found {arr[first]!r} at index {first} "
            f"({int(bad.sum())} non-finite value(s))."
        )
    return arr


def check_same_length(**arrays: np.ndarray) -> int:
    """Raise unless all arrays have the same length; return that length."""
    lengths = {name: len(arr) for name, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise MetricInputError(f"Inputs differ in length: {detail}.")
    return next(iter(lengths.values()), 0)


def check_count(k: Any, n: Any) -> tuple[int, int]:
    """Validate a binomial count ``k`` out of ``n`` (non-negative integers, k <= n)."""
    values = []
    for name, value in (("k", k), ("n", n)):
        try:
            whole = not isinstance(value, bool) and float(value).is_integer()
        except (TypeError, ValueError):
            whole = False
        if not whole:
            raise MetricInputError(f"{name} must be a whole number, got {value!r}.")
        values.append(int(value))
    k_int, n_int = values
    if n_int < 0 or not 0 <= k_int <= n_int:
        raise MetricInputError(f"Need 0 <= k <= n, got k={k_int}, n={n_int}.")
    return k_int, n_int


def to_jsonable(obj: Any) -> Any:
    """Convert results to plain JSON values for a JSONField.

    Intervals and other dataclasses become dicts, numpy scalars and arrays become Python
    numbers and lists, tuples become lists, and NaN/infinite floats become ``None`` (JSON has
    no NaN). Mapping keys become strings.
    """
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, Interval):
        return to_jsonable(obj.as_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(key): to_jsonable(value) for key, value in obj.items()}
    if isinstance(obj, np.ndarray):
        return [to_jsonable(value) for value in obj.tolist()]
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(value) for value in obj]
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    raise TypeError(f"Cannot convert {type(obj).__name__} to JSON.")
