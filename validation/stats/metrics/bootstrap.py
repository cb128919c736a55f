"""Stratified bootstrap intervals (percentile and BCa) for the operating-point metrics and the
AUC, overall and per subgroup, vectorised over replicates.

Resampling. Cases are resampled with replacement separately within each stratum (positives
and negatives, crossed with the optional ``strata`` attribute, e.g. site), so every replicate
keeps the study's class counts. Stratum ``j`` draws from its own generator, the ``j``-th child
of ``np.random.default_rng(seed).spawn``, one float64 per (replicate, case) mapped to a case
by ``floor(u * n_j)``; the stream does not depend on how replicates are chunked, so the same
seed and replicate count always give the same replicates.

Statistics. A chunk of replicates becomes a weight matrix ``W`` (replicates x cases, how
often each case was drawn; ``np.bincount`` on the index matrix). For each partition of the
cases (all cases, then each attribute's groups) the cases are sorted once by (group, score);
per replicate, a running sum of the negatives' weights in that order and one of the
positives' weights give every group's 2x2 table (read at the group's bounds and at its first
case with ``score >= threshold``) and its weighted AUC,
``sum_ij w_i w_j (1[s_i > s_j] + 0.5 * 1[s_i = s_j]) / (W_pos W_neg)`` over positives ``i``
and negatives ``j``: each positive is paired with the negative weight below its tie block
and through it, so ties are resolved on the resampled weights (a resampled case's midrank is
not its original one). All of this is integer arithmetic (exact, and numpy's integer running
sum is several times faster than its floating-point one), so a replicate's AUC equals
``roc_auc_score`` on the explicitly resampled arrays. Chunks are scored on a few threads
(numpy releases the GIL in these loops) while the main thread draws the next ones.

Memory. A chunk peaks at about ``BYTES_PER_DRAW`` (48) bytes per (replicate, case) and
chunks are sized to ``CHUNK_BYTES`` (64 MiB); with up to ``2 * MAX_WORKERS`` chunks in
flight, 100,000 cases x 2,000 replicates with 6 attributes stays well under 1 GB whatever
the replicate count (``bench/metrics.py`` prints the peak resident memory).

Intervals. Percentile: the ``alpha/2`` and ``1 - alpha/2`` quantiles of the replicates
(linear interpolation). BCa (Efron 1987): ``z0`` is the normal quantile of the fraction of
replicates below the estimate, ties counted half (as ``scipy.stats.bootstrap``); the
acceleration comes from the jackknife, for a stratified bootstrap summed over strata
(Davison & Hinkley 1997; scipy's multi-sample formula). The leave-one-out values are exact
closed forms rather than n refits: a proportion ``A/D`` becomes ``(A - a_i)/(D - d_i)``
(three distinct values), and an AUC loses a positive's DeLong structural component
``V10_i`` (``(m AUC - V10_i)/(m - 1)``) or a negative's ``V01_j``. A leave-one-out value
that is itself undefined (an emptied denominator) counts as the estimate, and an
acceleration whose jackknife does not vary is 0. Replicates in which a metric is undefined
(e.g. no predicted positives for PPV, a subgroup drawn without positives) are dropped, and
the method name says how many.

References
----------
- Efron B. Better bootstrap confidence intervals. J Am Stat Assoc 1987;82:171-185.
- Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall, 1993 (ch. 13
  percentile, ch. 14 BCa and its jackknife acceleration).
- Davison AC, Hinkley DV. Bootstrap Methods and their Application. Cambridge University
  Press, 1997 (stratified resampling and its influence values).
- DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44:837-845 (structural
  components, used here as exact jackknife values of the AUC).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ._base import Interval, MetricInputError, as_labels, as_scores, check_same_length, z_critical
from .binary import predict
from .bootstrap_bounds import (
    auc_leave_one_out,
    bca_bounds,
    jackknife_acceleration,
    percentile_bounds,
    ratio_leave_one_out,
)
from .subgroups import UNKNOWN, group_labels

METRICS = ("sensitivity", "specificity", "ppv", "npv", "accuracy", "auc")
METHODS = ("bca", "percentile")
TP, FN, FP, TN = range(4)  # cells of the 2x2 table, in the column order of the count matrix
RATIOS = {  # metric: (numerator cells, denominator cells)
    "sensitivity": ((TP,), (TP, FN)),
    "specificity": ((TN,), (TN, FP)),
    "ppv": ((TP,), (TP, FP)),
    "npv": ((TN,), (TN, FN)),
    "accuracy": ((TP, TN), (TP, FN, FP, TN)),
    "selection_rate": ((TP, FP), (TP, FN, FP, TN)),
}
# Computed on request only (the disparity intervals need it); not one of the report's metrics.
OPTIONAL_METRICS = ("selection_rate",)
ALL_METRICS = METRICS + OPTIONAL_METRICS
CHUNK_BYTES = 64 * 2**20
BYTES_PER_DRAW = 48
MAX_WORKERS = 4
MAX_CASES = 2**30  # int32 running sums hold twice this


@dataclasses.dataclass(frozen=True)
class BootstrapDistributions:
    """Estimates, replicate values and BCa accelerations of each metric for each unit.

    ``units[0]`` is ``(None, None)`` (all cases), followed by ``(attribute, group)`` for each
    group. ``sizes`` is ``(units, 3)``: n, n_pos, n_neg. ``estimates`` and
    ``accelerations`` map a metric to an array over units; ``replicates`` maps it to a
    ``(replicates, units)`` array, NaN where the metric is undefined in that replicate.
    """

    units: list[tuple[str | None, str | None]]
    sizes: np.ndarray
    estimates: dict[str, np.ndarray]
    replicates: dict[str, np.ndarray]
    accelerations: dict[str, np.ndarray]
    seed: int


@dataclasses.dataclass(frozen=True)
class _Layout:
    """One partition of the cases (all cases, or one attribute's groups) in (group, score)
    order. ``negative_order`` is that order with each positive replaced by the zero weight
    column. Per positive, in that order: its case and the sorted span of its tie block. Per
    group: the sorted position of its first case (``bounds``, with n appended) and of its
    first predicted positive (``threshold``), and the same two within the positives
    (``positive_bounds``, ``positive_threshold``). Group ``g`` is unit ``units[g]``."""

    negative_order: np.ndarray
    positive_cases: np.ndarray
    tie_start: np.ndarray
    tie_stop: np.ndarray
    has_ties: bool
    bounds: np.ndarray
    threshold: np.ndarray
    positive_bounds: np.ndarray
    positive_threshold: np.ndarray
    units: np.ndarray


@dataclasses.dataclass(frozen=True)
class _Design:
    """The cases reordered by stratum (the order the draws fill), the units with their
    masks, and one layout per partition."""

    y: np.ndarray
    scores: np.ndarray
    cells: np.ndarray
    strata: np.ndarray
    stratum_sizes: np.ndarray
    units: list[tuple[str | None, str | None]]
    masks: list[np.ndarray]
    layouts: list[_Layout]
    metrics: tuple[str, ...]


def bootstrap_metrics(
    y_true: Any,
    scores: Any,
    threshold: float,
    *,
    seed: int,
    replicates: int = 2000,
    method: str = "bca",
    level: float = 0.95,
    metrics: Sequence[str] = METRICS,
    strata: Any = None,
) -> dict[str, Interval]:
    """Stratified bootstrap intervals for the metrics at ``score >= threshold`` and the AUC.

    ``seed`` and ``replicates`` come from the locked protocol. ``method`` is ``"bca"`` or
    ``"percentile"``; ``strata`` optionally adds an attribute (e.g. site) to the class
    stratification. Returns ``{metric: Interval}``; the estimate is the plain sample value
    and the method name records B, the seed and any dropped replicates. Raises
    :class:`MetricInputError` when one class is absent.
    """
    return bootstrap_subgroup_metrics(
        y_true,
        scores,
        threshold,
        {},
        seed=seed,
        replicates=replicates,
        method=method,
        level=level,
        metrics=metrics,
        strata=strata,
    )["overall"]


def bootstrap_subgroup_metrics(
    y_true: Any,
    scores: Any,
    threshold: float,
    groups: Mapping[str, Any],
    *,
    seed: int,
    replicates: int = 2000,
    method: str = "bca",
    level: float = 0.95,
    metrics: Sequence[str] = METRICS,
    strata: Any = None,
) -> dict[str, Any]:
    """:func:`bootstrap_metrics` overall and for every group of every attribute, all from the
    same replicates (stratified over the whole sample, as the study was drawn).

    Group labels follow ``subgroup_table`` ("unknown" for missing, sorted last). Returns
    ``{"overall": {metric: Interval}, "subgroups": [row, ...]}`` with rows holding
    ``attribute``, ``group``, ``n``, ``n_pos``, ``n_neg`` and one :class:`Interval` per
    metric (all-NaN where the group's estimate is undefined, e.g. sensitivity without
    positives).
    """
    if method not in METHODS:
        raise ValueError(f"Unknown bootstrap method {method!r}; use one of {', '.join(METHODS)}.")
    z_critical(level)
    dist = bootstrap_distributions(
        y_true,
        scores,
        threshold,
        seed=seed,
        replicates=replicates,
        groups=groups,
        strata=strata,
        metrics=metrics,
    )
    return bootstrap_tables(dist, method=method, level=level)


def bootstrap_tables(
    dist: BootstrapDistributions, *, method: str = "bca", level: float = 0.95
) -> dict[str, Any]:
    """The intervals of ``bootstrap_subgroup_metrics`` from distributions already drawn."""
    if method not in METHODS:
        raise ValueError(f"Unknown bootstrap method {method!r}; use one of {', '.join(METHODS)}.")
    tables = [
        {
            metric: _interval(dist, metric, unit, method=method, level=level)
            for metric in dist.estimates
        }
        for unit in range(len(dist.units))
    ]
    rows = [
        {
            "attribute": attribute,
            "group": group,
            "n": int(dist.sizes[unit, 0]),
            "n_pos": int(dist.sizes[unit, 1]),
            "n_neg": int(dist.sizes[unit, 2]),
            **tables[unit],
        }
        for unit, (attribute, group) in enumerate(dist.units)
        if unit
    ]
    return {"overall": tables[0], "subgroups": rows}


def bootstrap_disparities(
    dist: BootstrapDistributions,
    compared: Mapping[str, Sequence[str]],
    *,
    level: float = 0.95,
) -> dict[str, dict[str, Interval]]:
    """Percentile intervals for fairlearn's worst-case disparities between the ``compared``
    groups of each attribute, from the same replicates as every other interval:
    ``equalized_odds_difference`` (the larger of the TPR and FPR spreads, max minus min over
    the groups) and ``demographic_parity_difference`` (the selection-rate spread).

    ``dist`` must hold sensitivity, specificity and selection_rate. A group whose rate is
    undefined in a replicate (drawn without positives) sits that replicate out. Percentile,
    not BCa: a maximum over groups has no closed-form jackknife here. Attributes with fewer
    than two compared groups are left out.
    """
    z_critical(level)
    index = {unit: i for i, unit in enumerate(dist.units)}
    result = {}
    for attribute, groups in compared.items():
        columns = [index[(attribute, group)] for group in groups if (attribute, group) in index]
        if len(columns) < 2:
            continue
        spreads = {
            key: (
                _spread(dist.replicates[rate][:, columns], flip),
                _spread(dist.estimates[rate][np.newaxis, columns], flip)[0],
            )
            for key, rate, flip in (
                ("tpr", "sensitivity", False),
                ("fpr", "specificity", True),
                ("selection", "selection_rate", False),
            )
        }
        eod = (
            np.fmax(spreads["tpr"][0], spreads["fpr"][0]),
            max(spreads["tpr"][1], spreads["fpr"][1]),
        )
        result[attribute] = {
            "equalized_odds_difference": _percentile_interval(*eod, dist.seed, level),
            "demographic_parity_difference": _percentile_interval(
                *spreads["selection"], dist.seed, level
            ),
        }
    return result


def _spread(values: np.ndarray, flip: bool) -> np.ndarray:
    """Max minus min over groups for each row (rates of ``1 - value`` when ``flip``)."""
    rates = 1.0 - values if flip else values
    defined = np.isfinite(rates).sum(axis=1) >= 2
    out = np.full(rates.shape[0], math.nan)
    if defined.any():
        kept = rates[defined]
        out[defined] = np.nanmax(kept, axis=1) - np.nanmin(kept, axis=1)
    return out


def _percentile_interval(values: np.ndarray, estimate: float, seed: int, level: float) -> Interval:
    defined = values[np.isfinite(values)]
    dropped = values.size - defined.size
    detail = f"B={values.size}, seed={seed}"
    if dropped:
        detail += f", {dropped} undefined replicate(s) dropped"
    name = f"Stratified bootstrap, percentile ({detail})"
    if defined.size < 2 or not math.isfinite(estimate):
        return Interval.undefined(name, level)
    lower, upper = percentile_bounds(defined, level=level)
    return Interval(float(estimate), lower, upper, name, level)


def bootstrap_distributions(
    y_true: Any,
    scores: Any,
    threshold: float,
    *,
    seed: int,
    replicates: int = 2000,
    groups: Mapping[str, Any] | None = None,
    strata: Any = None,
    metrics: Sequence[str] = METRICS,
    chunk: int | None = None,
) -> BootstrapDistributions:
    """The replicate values behind the intervals (see :class:`BootstrapDistributions`).

    ``chunk`` (replicates per chunk) only trades memory for speed; results do not depend on
    it.
    """
    design = _design(y_true, scores, threshold, groups or {}, strata, metrics)
    _check_replicates(replicates, seed)
    n = design.y.size
    estimates = _statistics(np.r_[np.ones(n, dtype=np.int8), 0][np.newaxis, :], design)
    draws = _draws(design.stratum_sizes, replicates, seed, chunk or _chunk_size(n))
    values = _replicate_values(design, draws, replicates)
    return BootstrapDistributions(
        units=design.units,
        sizes=np.array(
            [[m.sum(), design.y[m].sum(), (design.y[m] == 0).sum()] for m in design.masks]
        ),
        estimates={metric: value[0] for metric, value in estimates.items()},
        replicates=values,
        accelerations={
            metric: _accelerations(design, metric, estimates[metric][0])
            for metric in design.metrics
        },
        seed=int(seed),
    )


def bootstrap_indices(
    y_true: Any,
    *,
    replicates: int,
    seed: int,
    strata: Any = None,
    chunk: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield the stratified bootstrap index matrix in chunks of ``chunk`` replicates.

    Each chunk is ``(replicates in chunk, n)``: row ``b`` lists the cases of replicate ``b``,
    and column ``i`` holds a case of the same stratum as case ``i`` (so ``y[index[b]]``
    equals ``y``). These are exactly the replicates that :func:`bootstrap_distributions`
    scores.
    """
    y = as_labels(y_true)
    _check_replicates(replicates, seed)
    order, sizes = _stratum_order(_strata_codes(y, strata))
    for index in _draws(sizes, replicates, seed, chunk or _chunk_size(y.size)):
        cases = np.empty(index.shape, dtype=np.int64)
        cases[:, order] = order[index]
        yield cases


# -- intervals -----------------------------------------------------------------------------


def _interval(
    dist: BootstrapDistributions, metric: str, unit: int, *, method: str, level: float
) -> Interval:
    values = dist.replicates[metric][:, unit]
    defined = values[~np.isnan(values)]
    dropped = values.size - defined.size
    label = "BCa" if method == "bca" else "percentile"
    detail = f"B={values.size}, seed={dist.seed}"
    if dropped:
        detail += f", {dropped} undefined replicate(s) dropped"
    name = f"Stratified bootstrap, {label} ({detail})"
    estimate = float(dist.estimates[metric][unit])
    if math.isnan(estimate) or defined.size < 2:
        return Interval.undefined(name, level)
    if method == "bca":
        acceleration = float(dist.accelerations[metric][unit])
        lower, upper = bca_bounds(estimate, defined, acceleration, level=level)
    else:
        lower, upper = percentile_bounds(defined, level=level)
    return Interval(estimate, lower, upper, name, level)


def _accelerations(design: _Design, metric: str, estimates: np.ndarray) -> np.ndarray:
    result = np.zeros(len(design.units))
    for unit, mask in enumerate(design.masks):
        if math.isnan(estimates[unit]):
            result[unit] = math.nan
            continue
        if metric == "auc":
            loo = auc_leave_one_out(design.y, design.scores, mask, estimates[unit])
        else:
            numerator, denominator = RATIOS[metric]
            in_numerator = mask & np.isin(design.cells, numerator)
            in_denominator = mask & np.isin(design.cells, denominator)
            loo = ratio_leave_one_out(in_numerator, in_denominator, estimates[unit])
        result[unit] = jackknife_acceleration(loo, design.strata)
    return result


# -- replicate statistics ------------------------------------------------------------------


def _replicate_values(
    design: _Design, draws: Iterator[np.ndarray], replicates: int
) -> dict[str, np.ndarray]:
    """Score the chunks on a few threads (numpy releases the GIL in the heavy loops) while
    this thread draws the next ones; at most ``2 * workers`` chunks are held at once. Each
    chunk's rows are fixed before it is scored, so the thread count cannot change results."""
    values = {metric: np.empty((replicates, len(design.units))) for metric in design.metrics}
    workers = min(MAX_WORKERS, _available_cores())
    pending: collections.deque = collections.deque()

    def store() -> None:
        row, future = pending.popleft()
        for metric, chunk_values in future.result().items():
            values[metric][row : row + len(chunk_values)] = chunk_values

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        row = 0
        for index in draws:
            pending.append((row, pool.submit(_chunk_statistics, index, design)))
            row += len(index)
            if len(pending) >= 2 * workers:
                store()
        while pending:
            store()
    return values


def _available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: honours taskset and container CPU sets
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _chunk_statistics(index: np.ndarray, design: _Design) -> dict[str, np.ndarray]:
    return _statistics(_weights(index), design)


def _statistics(weights: np.ndarray, design: _Design) -> dict[str, np.ndarray]:
    """Every metric for every unit in every row of ``weights``: ``{metric: (rows, units)}``."""
    shape = (weights.shape[0], len(design.units))
    counts, pairs = np.empty((*shape, 4)), np.empty(shape)
    for layout in design.layouts:
        counts[:, layout.units], pairs[:, layout.units] = _layout_statistics(weights, layout)
    result = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for metric in design.metrics:
            if metric == "auc":
                positive = counts[..., TP] + counts[..., FN]
                result[metric] = pairs / (positive * (counts[..., FP] + counts[..., TN]))
            else:
                numerator, denominator = RATIOS[metric]
                result[metric] = counts[..., numerator].sum(-1) / counts[..., denominator].sum(-1)
    return result


def _layout_statistics(weights: np.ndarray, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Per row and group of ``layout``: the weighted 2x2 table ``(rows, groups, 4)`` and the
    weighted pair count ``sum_ij w_i w_j (1[s_i > s_j] + 0.5 1[s_i = s_j])``.

    Running sums are int32 (they stay below ``2n``), products and their sums int64.
    """
    below = _running_sum(np.take(weights, layout.negative_order, axis=1), np.int32)
    positive_weights = np.take(weights, layout.positive_cases, axis=1)
    twice = np.take(below, layout.tie_start, axis=1)  # negative weight below the tie block
    if layout.has_ties:
        twice += np.take(below, layout.tie_stop, axis=1)  # ... plus through it
    else:
        twice *= 2
    pair_sums = _running_sum(np.multiply(twice, positive_weights, dtype=np.int64), np.int64)
    positive = _running_sum(positive_weights, np.int32)
    neg_start, neg_threshold, neg_stop = (
        np.take(below, at, axis=1).astype(np.int64)
        for at in (layout.bounds[:-1], layout.threshold, layout.bounds[1:])
    )
    pos_start, pos_threshold, pos_stop = (
        np.take(positive, at, axis=1).astype(np.int64)
        for at in (
            layout.positive_bounds[:-1],
            layout.positive_threshold,
            layout.positive_bounds[1:],
        )
    )
    counts = np.stack(
        [
            pos_stop - pos_threshold,  # TP
            pos_threshold - pos_start,  # FN
            neg_stop - neg_threshold,  # FP
            neg_threshold - neg_start,  # TN
        ],
        axis=-1,
    )
    # Running sums start at the partition's first case; a group's own pairs exclude the
    # negatives of the groups sorted before it.
    twice_pairs = np.take(pair_sums, layout.positive_bounds[1:], axis=1) - np.take(
        pair_sums, layout.positive_bounds[:-1], axis=1
    )
    twice_pairs -= 2 * neg_start * (pos_stop - pos_start)
    return counts, 0.5 * twice_pairs


def _running_sum(values: np.ndarray, dtype: type) -> np.ndarray:
    """Cumulative sums along each row with a leading zero column."""
    result = np.empty((values.shape[0], values.shape[1] + 1), dtype=dtype)
    result[:, 0] = 0
    np.cumsum(values, axis=1, dtype=dtype, out=result[:, 1:])
    return result


def _weights(index: np.ndarray) -> np.ndarray:
    """How often each case is drawn in each row of an index matrix, plus a last column of
    zeros (gathering it is how the AUC leaves positives out of the negatives' running sum)."""
    rows, n = index.shape
    offsets = (np.arange(rows, dtype=np.int64) * (n + 1))[:, np.newaxis]
    flat = np.add(index, offsets, dtype=np.int64).ravel()
    counts = np.bincount(flat, minlength=rows * (n + 1)).reshape(rows, n + 1)
    # A case is almost never drawn more than 127 times; int8 makes the gathers much faster.
    return counts.astype(np.int8 if counts.max() <= np.iinfo(np.int8).max else np.int32)


def _draws(sizes: np.ndarray, replicates: int, seed: int, chunk: int) -> Iterator[np.ndarray]:
    """Index matrices over cases ordered by stratum (stratum ``j`` fills the ``j``-th block of
    ``sizes[j]`` columns), ``chunk`` replicates at a time; see the module docstring."""
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    generators = np.random.default_rng(seed).spawn(len(sizes))
    for first in range(0, replicates, chunk):
        rows = min(chunk, replicates - first)
        index = np.empty((rows, int(sizes.sum())), dtype=np.int32)
        for start, size, generator in zip(starts, sizes, generators, strict=True):
            draws = generator.random((rows, size))
            draws *= size
            block = index[:, start : start + size]
            np.copyto(block, draws, casting="unsafe")  # truncation is floor here
            np.minimum(block, size - 1, out=block)
            block += start
        yield index


def _chunk_size(n: int) -> int:
    return max(1, CHUNK_BYTES // (BYTES_PER_DRAW * max(n, 1)))


# -- inputs --------------------------------------------------------------------------------


def _design(
    y_true: Any,
    scores: Any,
    threshold: float,
    groups: Mapping[str, Any],
    strata: Any,
    metrics: Sequence[str],
) -> _Design:
    y = as_labels(y_true)
    s = as_scores(scores)
    n = check_same_length(y_true=y, scores=s)
    if n >= MAX_CASES:
        raise MetricInputError(f"The bootstrap takes fewer than {MAX_CASES} cases, got {n}.")
    n_pos = int(y.sum())
    if n_pos in (0, n):
        raise MetricInputError(
            f"The stratified bootstrap needs both classes (n_pos={n_pos}, n_neg={n - n_pos})."
        )
    unknown = sorted(set(metrics) - set(ALL_METRICS))
    if unknown or not metrics:
        raise ValueError(f"Unknown metrics {unknown!r}; choose from {', '.join(ALL_METRICS)}.")
    predicted = predict(s, threshold) == 1
    order, stratum_sizes = _stratum_order(_strata_codes(y, strata))
    partitions = [np.zeros(n, dtype=np.int64)]
    units: list[tuple[str | None, str | None]] = [(None, None)]
    for attribute, values in groups.items():
        codes, names = _group_codes(group_labels(values, n, attribute=attribute))
        partitions.append(codes[order])
        units += [(attribute, name) for name in names]
    y, s, predicted = y[order], s[order], predicted[order]
    cells = np.where(y == 1, np.where(predicted, TP, FN), np.where(predicted, FP, TN))
    offsets = np.cumsum([0] + [int(codes.max()) + 1 for codes in partitions])
    masks = [codes == code for codes in partitions for code in range(int(codes.max()) + 1)]
    return _Design(
        y=y,
        scores=s,
        cells=cells,
        strata=np.repeat(np.arange(stratum_sizes.size), stratum_sizes),
        stratum_sizes=stratum_sizes,
        units=units,
        masks=masks,
        layouts=[
            _layout(y, s, predicted, codes, np.arange(offsets[i], offsets[i + 1]))
            for i, codes in enumerate(partitions)
        ],
        metrics=tuple(metric for metric in ALL_METRICS if metric in metrics),
    )


def _group_codes(labels: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Codes of the group labels and their names, sorted with "unknown" last."""
    found, codes = np.unique(labels.astype(str), return_inverse=True)
    names = sorted((str(name) for name in found), key=lambda group: (group == UNKNOWN, group))
    rank = np.array([names.index(str(name)) for name in found])
    return rank[codes], names


def _layout(
    y: np.ndarray, scores: np.ndarray, predicted: np.ndarray, codes: np.ndarray, units: np.ndarray
) -> _Layout:
    order = np.lexsort((scores, codes))
    s, g, positive, below_threshold = scores[order], codes[order], y[order] == 1, ~predicted[order]
    n, groups = s.size, units.size
    new_block = np.r_[True, (s[1:] != s[:-1]) | (g[1:] != g[:-1])]
    block_starts = np.flatnonzero(new_block)
    block = np.cumsum(new_block) - 1
    positives = np.flatnonzero(positive)
    bounds = np.searchsorted(g, np.arange(groups + 1))
    positive_bounds = np.searchsorted(g[positives], np.arange(groups + 1))
    # Within a group the scores ascend, so the cases below the threshold come first.
    below = np.bincount(g[below_threshold], minlength=groups)
    positives_below = np.bincount(g[positives[below_threshold[positives]]], minlength=groups)
    tie_start = block_starts[block[positives]]
    tie_stop = np.r_[block_starts[1:], n][block[positives]]
    return _Layout(
        negative_order=np.where(positive, n, order),
        positive_cases=order[positives],
        tie_start=tie_start,
        tie_stop=tie_stop,
        has_ties=bool(np.any(tie_stop - tie_start > 1)),
        bounds=bounds,
        threshold=bounds[:-1] + below,
        positive_bounds=positive_bounds,
        positive_threshold=positive_bounds[:-1] + positives_below,
        units=units,
    )


def _stratum_order(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cases ordered by stratum (stable) and the stratum sizes."""
    return np.argsort(codes, kind="stable"), np.bincount(codes)


def _strata_codes(y: np.ndarray, strata: Any) -> np.ndarray:
    """Stratum of each case: its class, crossed with the ``strata`` attribute if given."""
    if strata is None:
        return y.astype(np.int64)
    labels = group_labels(strata, y.size, attribute="strata")
    _, level = np.unique(labels.astype(str), return_inverse=True)
    _, codes = np.unique(level * 2 + y, return_inverse=True)
    return codes


def _check_replicates(replicates: int, seed: int) -> None:
    for name, value, minimum in (("replicates", replicates, 2), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise MetricInputError(f"{name} must be a whole number, got {value!r}.")
        if value < minimum:
            raise MetricInputError(f"{name} must be at least {minimum}, got {value}.")
