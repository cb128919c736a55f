"""A case as a person sees it: DICOM to an 8-bit display image, the Grad-CAM map as a coloured
overlay with transparency, and the reference ROI as an outline. Pure numpy + pydicom + Pillow:
no Django. The console's case viewer serves these as PNG; DICOM never leaves the server.

The display pipeline follows PS3.3 C.11 (the grayscale standard display pipeline up to the
presentation LUT): stored values -> modality LUT (Rescale Slope/Intercept or the Modality LUT
Sequence) -> VOI (the file's VOI LUT Sequence or window, LINEAR / LINEAR_EXACT / SIGMOID, or a
named preset) -> [0, 1] -> MONOCHROME1 inverted (low values white) -> 8 bits. The VOI output
range is the one pydicom's `apply_voi_lut` uses, so the 8-bit image equals pydicom's output
scaled to 8 bits (tests/validation/test_display.py holds the two together on pydicom's own
MONOCHROME1 and MONOCHROME2 test files). Non-square pixels (Pixel Spacing, else Imager Pixel
Spacing) are resampled so the image shows with its true aspect.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from matplotlib import colormaps
from PIL import Image
from pydicom.pixels import apply_modality_lut

from validation.dicom.pixels import (
    DicomReadError,
    first_float,
    parse_dicom,
    resize,
    stored_pixels,
)

#: Largest side of a rendered image; larger images are scaled down (aspect kept).
MAX_DISPLAY_SIDE = 2048
#: The colour map of Grad-CAM overlays (the report's exemplars use the same one).
CAM_COLOURMAP = "jet"
#: Grad-CAM overlay opacity at the map's peak (cold regions are transparent).
CAM_MAX_ALPHA = 0.85
#: Smallest side of an overlay (Grad-CAM, ROI): a small image's overlays are drawn at a whole
#: multiple of its size, so a map is smooth and an outline thin once the page scales them up.
OVERLAY_MIN_SIDE = 768
ROI_COLOUR = (57, 255, 20, 255)  # a green no grayscale image and no jet colour contains

#: Window presets on Hounsfield units, offered for CT only (other modalities' values have no
#: fixed physical meaning, so a preset would be arbitrary there).
CT_PRESETS: dict[str, tuple[str, float, float]] = {
    "lung": ("Lung", -600.0, 1500.0),
    "mediastinum": ("Mediastinum", 50.0, 350.0),
    "soft-tissue": ("Soft tissue", 40.0, 400.0),
    "bone": ("Bone", 400.0, 1800.0),
    "brain": ("Brain", 40.0, 80.0),
}


class UnknownWindow(ValueError):
    """A window name this image does not offer."""


@dataclass(frozen=True)
class WindowChoice:
    key: str  # what ?window= takes
    label: str


@dataclass
class DisplayImage:
    """An 8-bit grayscale image ready to show (bright = dense), at display size."""

    pixels: np.ndarray  # uint8 (H, W), square pixels
    source_shape: tuple[int, int]  # rows, columns of the stored image
    window: str  # the window key applied
    windows: list[WindowChoice]

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


# --- windows ------------------------------------------------------------------------------------


def _file_windows(ds: pydicom.Dataset) -> int:
    """How many VOI transforms the file itself carries (LUTs first, then windows, as pydicom
    prefers a VOI LUT Sequence to a window)."""
    if "VOILUTSequence" in ds:
        return len(ds.VOILUTSequence)
    centers = ds.get("WindowCenter")
    if centers is None or ds.get("WindowWidth") is None:
        return 0
    return len(centers) if isinstance(centers, pydicom.multival.MultiValue) else 1


def window_choices(ds: pydicom.Dataset) -> list[WindowChoice]:
    """The windows this image offers, the default first: the file's own (each of them), the
    full range of its values, and the CT presets for CT."""
    choices = []
    explanations = ds.get("WindowCenterWidthExplanation")
    if explanations is not None and not isinstance(explanations, pydicom.multival.MultiValue):
        explanations = [explanations]
    for index in range(_file_windows(ds)):
        label = f"File window {index + 1}"
        if "VOILUTSequence" in ds:
            label = str(
                ds.VOILUTSequence[index].get("LUTExplanation") or f"File VOI LUT {index + 1}"
            )
        elif explanations and index < len(explanations) and str(explanations[index]).strip():
            label = f"File: {str(explanations[index]).strip()}"
        choices.append(WindowChoice(f"file-{index + 1}", label))
    choices.append(WindowChoice("full", "Full range"))
    if str(ds.get("Modality", "")).upper() == "CT":
        choices += [WindowChoice(key, label) for key, (label, _c, _w) in CT_PRESETS.items()]
    return choices


def voi_output_range(ds: pydicom.Dataset) -> tuple[float, float]:
    """The range a VOI transform maps into: the stored values' range, through the rescale when
    there is one (what pydicom's apply_windowing uses as y_min, y_max)."""
    if "ModalityLUTSequence" in ds:
        bits = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    bits = int(ds.BitsStored)
    if int(ds.get("PixelRepresentation", 0)) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope = first_float(ds.get("RescaleSlope"))
    intercept = first_float(ds.get("RescaleIntercept"))
    if slope is not None and intercept is not None:
        low, high = low * slope + intercept, high * slope + intercept
    return low, high


def apply_window(
    values: np.ndarray, center: float, width: float, *, function: str = "LINEAR"
) -> np.ndarray:
    """A VOI window as a fraction of the output range, in [0, 1] (PS3.3 C.11.2.1.2)."""
    x = np.asarray(values, dtype=np.float64)
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError("a LINEAR_EXACT window needs a width above 0")
        unit = (x - center) / width + 0.5
        return np.clip(unit, 0.0, 1.0)
    if width < 1:
        raise ValueError("a LINEAR window needs a width of at least 1")
    below, above = x <= center - 0.5 - (width - 1) / 2, x > center - 0.5 + (width - 1) / 2
    unit = ((x - (center - 0.5)) / (width - 1) + 0.5).clip(0.0, 1.0)
    return np.where(below, 0.0, np.where(above, 1.0, unit))


def _apply_voi_lut_item(values: np.ndarray, item: Any) -> np.ndarray:
    """One item of a VOI LUT Sequence: a table lookup, as a fraction of the table's range."""
    first = int(item.LUTDescriptor[1])
    bits = int(item.LUTDescriptor[2])
    table = np.asarray(item.LUTData, dtype=np.float64).ravel()
    index = np.clip(np.rint(values).astype(np.int64) - first, 0, len(table) - 1)
    return table[index] / float(2**bits - 1)


def voi_unit(ds: pydicom.Dataset, values: np.ndarray, window: str) -> np.ndarray:
    """The VOI transform named `window`, as a fraction of the output range in [0, 1]."""
    if window.startswith("file-"):
        index = int(window.removeprefix("file-")) - 1
        if "VOILUTSequence" in ds:
            return _apply_voi_lut_item(values, ds.VOILUTSequence[index])
        centers, widths = ds.WindowCenter, ds.WindowWidth
        if isinstance(centers, pydicom.multival.MultiValue):
            center, width = float(centers[index]), float(widths[index])
        else:
            center, width = float(centers), float(widths)
        function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
        # pydicom maps a window onto the output range [y_min, y_max] (`voi_output_range`); as a
        # fraction of that range it is the same whatever the range, so 8 bits agree.
        return apply_window(values, center, width, function=function)
    if window == "full":
        low, high = float(values.min()), float(values.max())
        return (values - low) / (high - low) if high > low else np.zeros_like(values)
    if window in CT_PRESETS:
        _label, center, width = CT_PRESETS[window]
        return apply_window(values, center, width)
    raise UnknownWindow(window)


# --- the image ----------------------------------------------------------------------------------


def to_uint8(unit: np.ndarray) -> np.ndarray:
    """[0, 1] to 0..255, rounding to the nearest level."""
    return np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def pixel_aspect(ds: pydicom.Dataset) -> float:
    """Row spacing over column spacing (a pixel's height over its width); 1 when unknown."""
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        row, column = float(spacing[0]), float(spacing[1])
    except (TypeError, ValueError, IndexError):
        return 1.0
    if not (np.isfinite(row) and np.isfinite(column)) or row <= 0 or column <= 0:
        return 1.0
    return row / column


def display_shape(rows: int, columns: int, aspect: float) -> tuple[int, int]:
    """The (height, width) that shows `rows` x `columns` pixels of `aspect` with square
    pixels, no side above MAX_DISPLAY_SIDE."""
    height, width = rows * aspect, float(columns)
    if aspect < 1:  # short pixels: keep the rows, narrow nothing, widen instead
        height, width = float(rows), columns / aspect
    scale = min(1.0, MAX_DISPLAY_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def overlay_shape(shape: tuple[int, int], min_side: int = OVERLAY_MIN_SIDE) -> tuple[int, int]:
    """The (height, width) overlays of an image of display `shape` are drawn at: the shape times
    the smallest whole factor that brings its larger side to `min_side` (never above
    MAX_DISPLAY_SIDE), so the overlay has exactly the image's aspect."""
    height, width = shape
    factor = max(1, -(-min_side // max(height, width)))
    factor = max(1, min(factor, MAX_DISPLAY_SIDE // max(height, width)))
    return height * factor, width * factor


def render(source: bytes | pydicom.Dataset, window: str | None = None) -> DisplayImage:
    """The display image of one DICOM file. `window` is a key from `window_choices` (None: the
    first, i.e. the file's own VOI when it has one, else the full range). Raises
    DicomReadError for an image the service does not decode, UnknownWindow for a window the
    image does not offer."""
    ds = parse_dicom(source) if isinstance(source, bytes) else source
    raw = stored_pixels(ds)
    try:
        values = np.asarray(apply_modality_lut(raw, ds), dtype=np.float64)
    except Exception as exc:  # a damaged LUT or rescale: data, not a bug
        raise DicomReadError(f"pixel data could not be decoded: {exc}") from exc
    choices = window_choices(ds)
    chosen = window or choices[0].key
    if chosen not in {c.key for c in choices}:
        raise UnknownWindow(chosen)
    unit = voi_unit(ds, values, chosen)
    if str(ds.PhotometricInterpretation).strip() == "MONOCHROME1":
        unit = 1.0 - unit  # minimum values are white: invert so bright = dense on screen
    rows, columns = unit.shape
    height, width = display_shape(rows, columns, pixel_aspect(ds))
    if (height, width) != (rows, columns):
        unit = resize(unit, height, width, "bilinear")
    return DisplayImage(
        pixels=to_uint8(unit), source_shape=(rows, columns), window=chosen, windows=choices
    )


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG of a uint8 array (gray, RGB or RGBA), without text chunks or timestamps."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


# --- overlays -----------------------------------------------------------------------------------


def cam_overlay(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The Grad-CAM map (any size, values in [0, 1]) as RGBA at display `shape`: the colour
    map's colour, with an opacity that grows with the activation (cold regions transparent),
    so the page's opacity slider scales it as a whole."""
    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2 or not np.isfinite(cam).all():
        raise ValueError("a Grad-CAM map is a finite 2-D array")
    heat = np.clip(resize(np.clip(cam, 0.0, 1.0), shape[0], shape[1], "bilinear"), 0.0, 1.0)
    rgba = colormaps[CAM_COLOURMAP](heat)
    rgba[..., 3] = CAM_MAX_ALPHA * heat
    return np.rint(rgba * 255.0).astype(np.uint8)


def colour_stops(n: int = 9) -> list[str]:
    """The overlay's colour map as CSS colours at n evenly spaced values (for the colour bar)."""
    cmap = colormaps[CAM_COLOURMAP]
    stops = []
    for value in np.linspace(0.0, 1.0, n):
        r, g, b, _a = (round(255 * c) for c in cmap(float(value)))
        stops.append(f"#{r:02x}{g:02x}{b:02x}")
    return stops


def load_mask(data: bytes) -> np.ndarray:
    """A stored ROI mask (.npy, as import writes it) as a boolean 2-D array; ValueError for
    anything else (no pickles are read)."""
    try:
        mask = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"not a mask: {exc}") from exc
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.size == 0:
        raise ValueError("a mask is a non-empty 2-D array")
    return mask != 0


def _erode(mask: np.ndarray) -> np.ndarray:
    """One step of binary erosion with the 4-neighbourhood; outside the image is background,
    so foreground on the image's edge erodes too."""
    padded = np.pad(mask, 1, constant_values=False)
    return (
        padded[1:-1, 1:-1]
        & padded[:-2, 1:-1]
        & padded[2:, 1:-1]
        & padded[1:-1, :-2]
        & padded[1:-1, 2:]
    )


def mask_outline(mask: np.ndarray, *, shape: tuple[int, int], thickness: int = 2) -> np.ndarray:
    """The contour of a reference mask (stored pixels, any size) on a transparent RGBA image
    of display `shape`: the mask scaled to `shape` (nearest neighbour, so no value is
    invented) and the band of foreground within `thickness` pixels of the background drawn in
    ROI_COLOUR, inside the region so it never covers what the region leaves out. Every
    separate region and every hole gets its own contour."""
    mask = np.asarray(mask) != 0
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError("a mask is a non-empty 2-D array")
    height, width = shape
    rows = np.minimum((np.arange(height) + 0.5) * mask.shape[0] / height, mask.shape[0] - 1)
    columns = np.minimum((np.arange(width) + 0.5) * mask.shape[1] / width, mask.shape[1] - 1)
    scaled = mask[rows.astype(np.intp)[:, None], columns.astype(np.intp)[None, :]]
    inner = scaled
    for _ in range(max(1, thickness)):
        inner = _erode(inner)
    out = np.zeros((height, width, 4), dtype=np.uint8)
    out[scaled & ~inner] = ROI_COLOUR
    return out


def roi_outline(
    roi: Any, *, source_shape: tuple[int, int], shape: tuple[int, int], thickness: int = 2
) -> np.ndarray:
    """The reference ROI box [x0, y0, x1, y1] (stored pixels) outlined on a transparent RGBA
    image of display `shape`."""
    out = np.zeros((shape[0], shape[1], 4), dtype=np.uint8)
    x0, y0, x1, y1 = (float(v) for v in roi)
    sy, sx = shape[0] / source_shape[0], shape[1] / source_shape[1]
    left = int(np.clip(np.floor(x0 * sx), 0, shape[1] - 1))
    right = int(np.clip(np.ceil(x1 * sx) - 1, left, shape[1] - 1))
    top = int(np.clip(np.floor(y0 * sy), 0, shape[0] - 1))
    bottom = int(np.clip(np.ceil(y1 * sy) - 1, top, shape[0] - 1))
    t = max(1, thickness)
    out[top : top + t, left : right + 1] = ROI_COLOUR
    out[max(bottom - t + 1, top) : bottom + 1, left : right + 1] = ROI_COLOUR
    out[top : bottom + 1, left : left + t] = ROI_COLOUR
    out[top : bottom + 1, max(right - t + 1, left) : right + 1] = ROI_COLOUR
    return out
