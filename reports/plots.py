"""Deterministic report figures, returned as ``data:`` URIs for the PDF renderer.

Every figure is drawn on a standalone ``Figure`` (no pyplot, so no GUI backend and no global
figure registry) and written without timestamps or random ids, so the same inputs give the same
bytes in every process. That is what keeps issued PDFs byte-reproducible.

Every text on a figure is literal: labels come from datasets and manifests (a subgroup value
``White $\\undefinedmacro$`` must print as written, not fail as mathtext), so `_svg_data_uri`
turns math parsing and TeX off on every text artist before it draws, and the rc settings do the
same for artists created while drawing.
"""

from __future__ import annotations

import base64
import io
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, TypeGuard

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.typing import RcKeyType

from validation.dicom.display import CAM_COLOURMAP, cam_overlay, mask_outline, roi_outline

# Matplotlib otherwise derives SVG element ids from a random salt.
_RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "blindspot-report",
    "svg.fonttype": "none",
    "text.parse_math": False,
    "text.usetex": False,
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.linewidth": 0.6,
    "axes.edgecolor": "#333333",
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
}
_INK = "#1f3a5f"
_ACCENT = "#c0392b"
_GRID = "#d9d9d9"


#: A plot label longer than this is shortened with an ellipsis (tables print it whole).
MAX_LABEL_CHARS = 60


_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def plot_label(value: Any) -> str:
    """Display text from a dataset or manifest as a plot label: one line (line breaks become
    spaces), control and bidi characters shown as code points (as the report's text filters
    do), at most `MAX_LABEL_CHARS` characters. Math parsing is off for every text artist."""
    text = "".join(
        " "
        if char in "\n\r\t"
        else f"[U+{ord(char):04X}]"
        if char in _BIDI_CONTROLS or unicodedata.category(char) == "Cc"
        else char
        for char in str(value)
    )
    if len(text) <= MAX_LABEL_CHARS:
        return text
    return text[: MAX_LABEL_CHARS - 1] + "\N{HORIZONTAL ELLIPSIS}"


def _svg_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    with rc_context(_RC):
        for artist in fig.findobj(Text):
            artist.set_parse_math(False)
            artist.set_usetex(False)
        fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches=None)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _as_curve(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size < 2:
        raise ValueError(f"{name} must be a sequence of at least two numbers.")
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
        raise ValueError(f"{name} must hold finite values in [0, 1].")
    return array


def roc_plot(
    fpr: Sequence[float],
    tpr: Sequence[float],
    auc: float,
    operating_point: tuple[float, float] | None = None,
) -> str:
    """ROC curve with the chance diagonal and the operating point, as an SVG data URI."""
    fpr_arr = _as_curve(fpr, "fpr")
    tpr_arr = _as_curve(tpr, "tpr")
    if fpr_arr.shape != tpr_arr.shape:
        raise ValueError("fpr and tpr must have the same length.")
    with rc_context(_RC):
        fig = Figure(figsize=(3.6, 3.4))
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], linestyle="--", linewidth=0.7, color="#888888", label="Chance")
        ax.plot(fpr_arr, tpr_arr, color=_INK, linewidth=1.4, label=f"ROC (AUC = {auc:.3f})")
        if operating_point is not None:
            op_fpr, op_tpr = operating_point
            ax.plot(
                [op_fpr],
                [op_tpr],
                marker="o",
                markersize=5,
                color=_ACCENT,
                linestyle="none",
                label=f"Operating point ({1 - op_fpr:.3f} spec, {op_tpr:.3f} sens)",
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.0)
        ax.set_aspect("equal")
        ax.set_xlabel("1 \N{MINUS SIGN} specificity (false positive rate)")
        ax.set_ylabel("Sensitivity (true positive rate)")
        ax.grid(True, color=_GRID, linewidth=0.5)
        ax.legend(loc="lower right", fontsize=6.5, frameon=True, framealpha=0.9)
        fig.tight_layout(pad=0.4)
        return _svg_data_uri(fig)


def forest_plot(
    rows: Sequence[Mapping],
    *,
    metric: str = "sensitivity",
    reference: float | None = None,
) -> str | None:
    """Per-subgroup point estimates with 95% CI whiskers, as an SVG data URI.

    ``rows`` are report-document subgroup rows (``attribute``, ``group``, ``suppressed`` and a
    ``{estimate, lower, upper}`` entry under ``metric``). Suppressed rows and rows without the
    metric are omitted; returns ``None`` when nothing is left to draw. ``reference`` draws a
    vertical line, typically the overall estimate.
    """
    drawable = [
        row for row in rows if not row.get("suppressed") and isinstance(row.get(metric), Mapping)
    ]
    if not drawable:
        return None
    labels = [plot_label(f"{row.get('attribute', '')}: {row.get('group', '')}") for row in drawable]
    estimates = np.array([float(row[metric]["estimate"]) for row in drawable])
    lowers = np.array([float(row[metric]["lower"]) for row in drawable])
    uppers = np.array([float(row[metric]["upper"]) for row in drawable])
    if not (np.all(np.isfinite(estimates + lowers + uppers))):
        raise ValueError("Forest plot values must be finite.")
    positions = np.arange(len(drawable))[::-1]
    with rc_context(_RC):
        fig = Figure(figsize=(6.4, 0.9 + 0.28 * len(drawable)))
        ax = fig.add_subplot()
        ax.errorbar(
            estimates,
            positions,
            xerr=[np.clip(estimates - lowers, 0, None), np.clip(uppers - estimates, 0, None)],
            fmt="s",
            markersize=4,
            color=_INK,
            ecolor=_INK,
            elinewidth=1.0,
            capsize=2.5,
        )
        if reference is not None:
            ax.axvline(reference, color=_ACCENT, linestyle="--", linewidth=0.8)
        ax.set_yticks(positions, labels=labels)
        ax.set_ylim(-0.7, len(drawable) - 0.3)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"{metric.capitalize()} (95% CI)")
        ax.grid(True, axis="x", color=_GRID, linewidth=0.5)
        fig.tight_layout(pad=0.4)
        return _svg_data_uri(fig)


def calibration_plot(bins: Sequence[Mapping]) -> str | None:
    """Reliability diagram: observed fraction (Wilson 95% CI) against mean predicted
    probability per bin, marker area by the bin's count, with the identity line; an SVG data
    URI, or ``None`` without bins."""
    usable = [
        b
        for b in bins
        if not b.get("suppressed")
        and all(_is_finite(b.get(k)) for k in ("mean_predicted", "observed_fraction", "n"))
    ]
    if not usable:
        return None
    x = np.array([float(b["mean_predicted"]) for b in usable])
    y = np.array([float(b["observed_fraction"]) for b in usable])
    n = np.array([float(b["n"]) for b in usable])
    low = np.array([_interval_end(b, "lower", y_) for b, y_ in zip(usable, y, strict=True)])
    high = np.array([_interval_end(b, "upper", y_) for b, y_ in zip(usable, y, strict=True)])
    with rc_context(_RC):
        fig = Figure(figsize=(3.6, 3.4))
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color=_GRID, linewidth=1.0, linestyle="--")
        ax.errorbar(
            x,
            y,
            yerr=[np.clip(y - low, 0, None), np.clip(high - y, 0, None)],
            fmt="none",
            ecolor=_INK,
            elinewidth=0.8,
            capsize=2,
        )
        ax.scatter(x, y, s=12 + 60 * n / n.max(), color=_ACCENT, zorder=3)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("Mean predicted probability")
        ax.set_ylabel("Observed fraction positive")
        ax.grid(True, color=_GRID, linewidth=0.5)
        fig.tight_layout(pad=0.4)
        return _svg_data_uri(fig)


def _is_finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _interval_end(bin_: Mapping, key: str, default: float) -> float:
    interval = bin_.get("observed_interval")
    value = interval.get(key) if isinstance(interval, Mapping) else None
    return float(value) if _is_finite(value) else default


#: The exemplar figure's layout in pixels (at `EXEMPLAR_DPI`): the image at the top left,
#: `EXEMPLAR_PAD` below the top edge, then a gap, the colour bar and its tick labels.
EXEMPLAR_DPI = 100
EXEMPLAR_PAD = 10
EXEMPLAR_GAP = 6
EXEMPLAR_BAR = 12
EXEMPLAR_TICKS = 38


def exemplar_png(
    image: np.ndarray,
    cam: np.ndarray,
    *,
    roi_box: Sequence[float] | None = None,
    source_shape: tuple[int, int] | None = None,
    roi_mask: np.ndarray | None = None,
) -> str:
    """A Grad-CAM exemplar as a PNG data URI: the grayscale ``image`` (HxW, any finite range,
    min-max normalised, shown pixel for pixel) under the map (``cam``, any size, values in
    [0, 1], resized to the image) in the case viewer's colour map and opacity, the reference
    ROI outlined in the viewer's ROI colour (the mask's contour, else the box ``roi_box``
    [x0, y0, x1, y1] in the pixels of an image of ``source_shape``), and a colour bar from 0
    to 1 beside it. The PNG carries no text chunks or timestamps."""
    image = np.asarray(image, dtype=float)
    if image.ndim != 2 or not np.all(np.isfinite(image)):
        raise ValueError("image must be a finite 2-D array.")
    height, width = image.shape
    low, high = float(image.min()), float(image.max())
    gray = (image - low) / (high - low) if high > low else np.zeros_like(image)
    heat = cam_overlay(cam, (height, width)).astype(float) / 255.0
    alpha = heat[..., 3:]
    rgb = (1.0 - alpha) * np.repeat(gray[..., None], 3, axis=2) + alpha * heat[..., :3]
    thickness = max(2, max(height, width) // 128)
    outline = None
    if roi_mask is not None:
        outline = mask_outline(roi_mask, shape=(height, width), thickness=thickness)
    elif roi_box is not None:
        source = source_shape or (height, width)
        outline = roi_outline(
            roi_box, source_shape=source, shape=(height, width), thickness=thickness
        )
    if outline is not None:
        drawn = outline[..., 3] > 0
        rgb[drawn] = outline[drawn][:, :3] / 255.0
    pixels = np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)

    fig_w = width + EXEMPLAR_GAP + EXEMPLAR_BAR + EXEMPLAR_TICKS
    fig_h = height + 2 * EXEMPLAR_PAD
    with rc_context(_RC):
        fig = Figure(figsize=(fig_w / EXEMPLAR_DPI, fig_h / EXEMPLAR_DPI), dpi=EXEMPLAR_DPI)
        ax = fig.add_axes((0.0, EXEMPLAR_PAD / fig_h, width / fig_w, height / fig_h))
        ax.imshow(pixels, interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        bar = fig.add_axes(
            (
                (width + EXEMPLAR_GAP) / fig_w,
                EXEMPLAR_PAD / fig_h,
                EXEMPLAR_BAR / fig_w,
                height / fig_h,
            )
        )
        ramp = colormaps[CAM_COLOURMAP](np.linspace(1.0, 0.0, height))[:, None, :3]
        bar.imshow(
            np.repeat(ramp, EXEMPLAR_BAR, axis=1),
            interpolation="nearest",
            aspect="auto",
            extent=(0.0, 1.0, 0.0, 1.0),
        )
        bar.set_xticks([])
        bar.set_yticks([0.0, 0.5, 1.0], labels=["0", "0.5", "1"])
        bar.yaxis.tick_right()
        bar.tick_params(axis="y", labelsize=11, length=2, pad=1)
        for spine in bar.spines.values():
            spine.set_linewidth(0.4)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=EXEMPLAR_DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
