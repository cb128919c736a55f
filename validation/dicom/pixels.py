"""Pixel pipeline from a DICOM file to the tensor a vendor's model declared it expects.

Ingest, the runner feed and the tests all go through these functions, so a model is evaluated on
exactly the pixels its input spec describes. Pure numpy + pydicom: no Django, no torch.

Order of operations (each step is a separate function so tests can pin it):
modality LUT -> window or percentile scaling to [0, 1] -> MONOCHROME1 inversion (bright = dense)
-> resize -> replicate to C channels -> (x - mean) / std.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.pixels import apply_modality_lut

RESIZE_METHODS = ("bilinear", "area", "nearest")
SCALING_METHODS = ("percentile", "window")
PHOTOMETRIC_SUPPORTED = ("MONOCHROME1", "MONOCHROME2")
MAX_SIDE = 4096


class DicomReadError(Exception):
    """A partner file that cannot become model input; `reason` is short and safe to record."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- input spec ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingSpec:
    """How raw (modality-LUT) values map to [0, 1].

    `percentile` clips at per-image percentiles, robust to sites with different bit depths.
    `window` uses explicit center/width, or the file's own WindowCenter/WindowWidth when omitted.
    """

    method: str = "percentile"
    low: float = 0.5
    high: float = 99.5
    center: float | None = None
    width: float | None = None


@dataclass(frozen=True)
class InputSpec:
    """The input contract a model package declares; build it with `InputSpec.from_dict`."""

    channels: int
    height: int
    width: int
    scaling: ScalingSpec = field(default_factory=ScalingSpec)
    resize: str = "bilinear"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSpec:
        """Validate a vendor-supplied dict; every problem raises ValueError naming the key."""
        if not isinstance(d, Mapping):
            raise ValueError("input spec must be a mapping")
        # `modalities` belongs to the manifest's input spec but is checked at run start, not here.
        known = {"modalities", "channels", "height", "width", "scaling", "resize", "mean", "std"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"input spec has unknown keys: {', '.join(unknown)}")
        missing = [k for k in ("channels", "height", "width") if k not in d]
        if missing:
            raise ValueError(f"input spec is missing: {', '.join(missing)}")

        channels = _positive_int(d["channels"], "channels", upper=4)
        height = _positive_int(d["height"], "height", upper=MAX_SIDE)
        width = _positive_int(d["width"], "width", upper=MAX_SIDE)

        resize = d.get("resize", "bilinear")
        if resize not in RESIZE_METHODS:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_METHODS)}, got {resize!r}")

        mean = _per_channel(d.get("mean", [0.0]), "mean", channels)
        std = _per_channel(d.get("std", [1.0]), "std", channels)
        if any(s <= 0 for s in std):
            raise ValueError("std values must be > 0")

        return cls(
            channels=channels,
            height=height,
            width=width,
            scaling=_scaling_from_dict(d.get("scaling", {"method": "percentile"})),
            resize=resize,
            mean=mean,
            std=std,
        )


def _positive_int(value: Any, name: str, *, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise ValueError(f"{name} must be an integer between 1 and {upper}, got {value!r}")
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _per_channel(value: Any, name: str, channels: int) -> tuple[float, ...]:
    values = [value] if isinstance(value, int | float) else value
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) == 0:
        raise ValueError(f"{name} must be a number or a list of numbers")
    out = tuple(_number(v, name) for v in values)
    if len(out) not in (1, channels):
        raise ValueError(f"{name} must have 1 or {channels} values, got {len(out)}")
    return out * channels if len(out) == 1 else out


def _scaling_from_dict(d: Any) -> ScalingSpec:
    if not isinstance(d, Mapping):
        raise ValueError("scaling must be a mapping with a 'method'")
    method = d.get("method")
    if method not in SCALING_METHODS:
        raise ValueError(f"scaling.method must be one of {', '.join(SCALING_METHODS)}")
    if method == "percentile":
        unknown = sorted(set(d) - {"method", "low", "high"})
        if unknown:
            raise ValueError(f"percentile scaling has unknown keys: {', '.join(unknown)}")
        low = _number(d.get("low", 0.5), "scaling.low")
        high = _number(d.get("high", 99.5), "scaling.high")
        if not 0 <= low < high <= 100:
            raise ValueError("percentile scaling needs 0 <= low < high <= 100")
        return ScalingSpec(method="percentile", low=low, high=high)

    unknown = sorted(set(d) - {"method", "center", "width"})
    if unknown:
        raise ValueError(f"window scaling has unknown keys: {', '.join(unknown)}")
    if ("center" in d) != ("width" in d):
        raise ValueError("window scaling needs both center and width, or neither (use the file's)")
    if "center" not in d:
        return ScalingSpec(method="window")
    width = _number(d["width"], "scaling.width")
    if width < 1:
        raise ValueError("scaling.width must be >= 1")
    return ScalingSpec(method="window", center=_number(d["center"], "scaling.center"), width=width)


# --- reading ------------------------------------------------------------------------------------


@dataclass
class DicomImage:
    """One decoded frame: `pixels` are float32 after the modality LUT (Rescale Slope/Intercept)."""

    pixels: np.ndarray
    photometric: str = "MONOCHROME2"
    window_center: float | None = None
    window_width: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


def read_dicom(source: str | PathLike | bytes) -> DicomImage:
    """Parse and decode one file (a path, or its bytes), or raise DicomReadError with a reason fit
    for the ingest log."""
    return decode_dicom(parse_dicom(source))


def parse_dicom(source: str | PathLike | bytes) -> pydicom.Dataset:
    """Parse a Part-10 file (path or bytes) without decoding pixels."""
    try:
        return pydicom.dcmread(io.BytesIO(source) if isinstance(source, bytes) else source)
    except pydicom.errors.InvalidDicomError:
        raise DicomReadError("not a DICOM Part-10 file") from None
    except FileNotFoundError:
        raise DicomReadError("file not found") from None
    # Partner files are untrusted input: pydicom signals damage with many exception types (EOFError,
    # struct.error, ValueError, ...). Any of them means "unreadable", recorded, never a crash.
    except Exception as exc:
        raise DicomReadError(f"could not parse DICOM: {_short(exc)}") from exc


def decode_dicom(ds: pydicom.Dataset) -> DicomImage:
    """Check the image is one we support and decode it through the modality LUT."""
    raw = stored_pixels(ds)
    try:
        pixels = np.asarray(apply_modality_lut(raw, ds), dtype=np.float32)
    except Exception as exc:  # a damaged LUT or rescale: data, not a bug
        raise DicomReadError(f"pixel data could not be decoded: {_short(exc)}") from exc
    if not np.isfinite(pixels).all():
        raise DicomReadError("pixel data contains non-finite values")
    return DicomImage(
        pixels=pixels,
        photometric=str(ds.PhotometricInterpretation).strip(),
        window_center=first_float(ds.get("WindowCenter")),
        window_width=first_float(ds.get("WindowWidth")),
        attributes=dicom_attributes(ds),
    )


def check_decodable(ds: pydicom.Dataset) -> tuple[int, int]:
    """What ingest needs to know: the image decodes and `decode_dicom` will accept it. Same
    checks, without building the float image (ingest does not feed a model). Returns (rows,
    columns)."""
    raw = stored_pixels(ds)
    slope = first_float(ds.get("RescaleSlope", 1.0))
    intercept = first_float(ds.get("RescaleIntercept", 0.0))
    if slope is None or intercept is None:
        raise DicomReadError("pixel data contains non-finite values (rescale slope/intercept)")
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        raise DicomReadError("pixel data contains non-finite values")
    return raw.shape


def stored_pixels(ds: pydicom.Dataset) -> np.ndarray:
    """The stored values of a supported single-frame grayscale image, or DicomReadError."""
    if "PixelData" not in ds:
        raise DicomReadError("no pixel data")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in PHOTOMETRIC_SUPPORTED:
        raise DicomReadError(f"unsupported photometric interpretation {photometric or '(none)'!r}")
    try:
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError) as exc:
        raise DicomReadError(f"invalid image header: {_short(exc)}") from exc
    if samples != 1:
        raise DicomReadError("only single-sample (grayscale) images are supported")
    if frames != 1:
        raise DicomReadError("multi-frame images are not supported yet")
    try:
        raw = ds.pixel_array
    except Exception as exc:  # same reasoning as parse_dicom: decoder failures are data
        raise DicomReadError(f"pixel data could not be decoded: {_short(exc)}") from exc
    if raw.ndim != 2 or min(raw.shape) < 2:
        raise DicomReadError(f"unexpected pixel array shape {raw.shape}")
    return raw


def dicom_attributes(ds: pydicom.Dataset) -> dict[str, Any]:
    """The subgroup attributes the brief says come from DICOM, normalised to JSON-friendly types.
    A malformed value becomes None (unknown) rather than failing the case."""
    get = _TextReader(ds).get
    fields = {
        "sex": lambda: _text(get("PatientSex")),
        "age": lambda: parse_age(get("PatientAge")),
        "manufacturer": lambda: _text(get("Manufacturer")),
        "model": lambda: _text(get("ManufacturerModelName")),
        "institution": lambda: _text(get("InstitutionName")),
        "body_part": lambda: _text(get("BodyPartExamined")),
        "pixel_spacing": lambda: _spacing(get),
        "kvp": lambda: first_float(get("KVP")),
        "photometric": lambda: _text(get("PhotometricInterpretation")),
        "modality": lambda: _text(get("Modality")),
        "rows": lambda: int(ds.Rows) if "Rows" in ds else None,
        "columns": lambda: int(ds.Columns) if "Columns" in ds else None,
        "synthetic": lambda: declared_synthetic(get("DeidentificationMethod")),
    }
    attributes: dict[str, Any] = {}
    for name, read in fields.items():
        try:
            attributes[name] = read()
        except Exception:  # a damaged element: unknown, and the decode step says what is wrong
            attributes[name] = None
    return attributes


class _TextReader:
    """Text values of a dataset's elements, decoded straight from the bytes read when the
    element is still raw and the character set is one a plain codec decodes as pydicom does
    (default repertoire, Latin-1, UTF-8); otherwise, and for every other VR, through pydicom.

    Ingest reads a dozen attributes a file; pydicom's element conversion costs ~20 us each,
    as much as the rest of the attribute work. The tests hold both paths to the same values."""

    _CODECS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}
    _TEXT_VRS = frozenset({"AE", "AS", "CS", "DS", "IS", "LO", "SH"})

    def __init__(self, ds: pydicom.Dataset):
        self.ds = ds
        charset = ds.get("SpecificCharacterSet", "")
        self.codec = self._CODECS.get(charset) if isinstance(charset, str) else None

    def get(self, keyword: str) -> Any:
        tag = tag_for_keyword(keyword)
        item = self.ds.get_item(tag) if tag is not None else None
        if (
            self.codec is None
            or not isinstance(item, RawDataElement)
            or (item.VR or dictionary_VR(tag)) not in self._TEXT_VRS
        ):
            return self.ds.get(keyword)
        try:
            text = (item.value or b"").decode(self.codec)
        except UnicodeDecodeError:
            return self.ds.get(keyword)
        values = [v.strip(" \x00") for v in text.split("\\")]
        return values if len(values) > 1 else (values[0] or None)


def _spacing(get) -> list[float] | None:
    spacing = get("PixelSpacing") or get("ImagerPixelSpacing")
    if not spacing:
        return None
    if isinstance(spacing, str) or not isinstance(spacing, Sequence):
        spacing = [spacing]
    values = [float(v) for v in spacing][:2]
    return values if all(np.isfinite(values)) else None


def parse_age(value: Any) -> int | None:
    """DICOM AS ('054Y', '006M', '010W', '003D') to whole years; anything else is unknown."""
    text = _text(value)
    if not text or len(text) != 4 or not text[:3].isdigit() or text[3] not in "YMWD":
        return None
    n = int(text[:3])
    return {"Y": n, "M": n // 12, "W": n // 52, "D": n // 365}[text[3]]


def declared_synthetic(method: Any) -> bool:
    """Whether the file's De-identification Method (0012,0063), read before the service
    de-identifies it, declares the image synthetic (generated, not acquired from a patient):
    the report then says so, and says nothing of the kind for any other data."""
    values = method if isinstance(method, Sequence) and not isinstance(method, str) else [method]
    return any("synthetic" in str(value).lower() for value in values if value is not None)


def _text(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def first_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text[:160]


# --- pixel pipeline -----------------------------------------------------------------------------


def scale_unit(image: DicomImage, scaling: ScalingSpec) -> np.ndarray:
    """Map modality values to [0, 1], bright = dense whatever the photometric interpretation."""
    px = image.pixels.astype(np.float64, copy=False)
    if scaling.method == "window":
        center, width = scaling.center, scaling.width
        if center is None:
            center, width = image.window_center, image.window_width
        if center is None or width is None or width < 1:
            raise ValueError("window scaling requested but the image has no usable window")
        # Linear VOI function of PS3.3 C.11.2.1.2.1, expressed on a [0, 1] output range.
        unit = (px - (center - 0.5)) / (width - 1) + 0.5
    else:
        lo, hi = np.percentile(px, [scaling.low, scaling.high])
        unit = (px - lo) / (hi - lo) if hi > lo else np.zeros_like(px)
    unit = np.clip(unit, 0.0, 1.0)
    if image.photometric == "MONOCHROME1":
        unit = 1.0 - unit
    return unit


def resize(img: np.ndarray, height: int, width: int, method: str) -> np.ndarray:
    """Separable resize by two small matrices: out = Ry @ img @ Rx.T (exact area weights)."""
    ry = _resize_matrix(img.shape[0], height, method)
    rx = _resize_matrix(img.shape[1], width, method)
    return ry @ img @ rx.T


@functools.lru_cache(maxsize=64)
def _resize_matrix(n_in: int, n_out: int, method: str) -> np.ndarray:
    """Row i holds the weights of input samples for output sample i (pixel-centre convention).
    Cached (read-only): a cohort has few image sizes, and building the area weights cost more
    than the resize itself."""
    m = _resize_weights(n_in, n_out, method)
    m.setflags(write=False)
    return m


def _resize_weights(n_in: int, n_out: int, method: str) -> np.ndarray:
    if method not in RESIZE_METHODS:
        raise ValueError(f"unknown resize method {method!r}")
    scale = n_in / n_out
    m = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    if method == "nearest":
        src = np.minimum(((rows + 0.5) * scale).astype(int), n_in - 1)
        m[rows, src] = 1.0
    elif method == "bilinear":
        src = np.clip((rows + 0.5) * scale - 0.5, 0, n_in - 1)
        left = np.floor(src).astype(int)
        right = np.minimum(left + 1, n_in - 1)
        frac = src - left
        np.add.at(m, (rows, left), 1.0 - frac)
        np.add.at(m, (rows, right), frac)
    else:  # area: each output pixel averages the input it covers, partial pixels by overlap
        edges_out = np.arange(n_out + 1) * scale
        lo_in, hi_in = np.arange(n_in), np.arange(n_in) + 1
        overlap = np.minimum(edges_out[1:, None], hi_in[None, :]) - np.maximum(
            edges_out[:-1, None], lo_in[None, :]
        )
        m = np.clip(overlap, 0.0, None) / scale
    return m


def to_model_input(image: DicomImage, spec: InputSpec) -> np.ndarray:
    """One image in the model's declared layout: float32 (C, H, W), normalised per channel."""
    unit = scale_unit(image, spec.scaling)
    small = resize(unit, spec.height, spec.width, spec.resize)
    stacked = np.repeat(small[None, :, :], spec.channels, axis=0)
    mean = np.asarray(spec.mean, dtype=np.float64)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float64)[:, None, None]
    return ((stacked - mean) / std).astype(np.float32)


def batch_inputs(
    paths: Iterable[str | PathLike | bytes], spec: InputSpec
) -> tuple[np.ndarray, list[str | None]]:
    """Read many files; row i always belongs to paths[i].

    A file that fails gets an all-zero row and its reason in errors[i] (None on success). Keeping
    rows aligned with paths means a caller can never attach a score to the wrong case; it must
    drop rows whose error is not None before scoring.
    """
    paths = list(paths)
    batch = np.zeros((len(paths), spec.channels, spec.height, spec.width), dtype=np.float32)
    errors: list[str | None] = []
    for i, path in enumerate(paths):
        try:
            batch[i] = to_model_input(read_dicom(path), spec)
        except DicomReadError as exc:
            errors.append(exc.reason)
        except ValueError as exc:  # e.g. window scaling on a file without a window
            errors.append(str(exc))
        else:
            errors.append(None)
    return batch, errors
