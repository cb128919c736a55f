"""The manifest CSV of a partner dataset: one row per case with its file, its reference-standard
label, an optional ROI (a box or a mask file) and the attributes DICOM does not carry.

`parse_manifest` reads and checks every row before anything is ingested and raises one
ApplicationError listing each problem by line; a file or mask must be a regular file inside the
manifest's folder (links and paths that leave it are refused). No Django.
"""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import numpy as np

from validation.errors import ApplicationError

REQUIRED_COLUMNS = {"case_id", "file", "label"}
ROI_COLUMNS = ("roi_x0", "roi_y0", "roi_x1", "roi_y1")
ATTRIBUTE_COLUMNS = ("race", "ethnicity", "site")
OPTIONAL_COLUMNS = {*ROI_COLUMNS, "roi_mask", *ATTRIBUTE_COLUMNS}
MASK_SUFFIXES = (".png", ".npy")
MAX_PROBLEMS_LISTED = 50
MAX_MASK_SIDE = 8192


def parse_manifest(manifest_path: Path) -> list[dict]:
    """Read and check every row; raise one ApplicationError listing each problem by line."""
    root = manifest_path.parent.resolve()
    try:
        handle = open(manifest_path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ApplicationError(f"Cannot read the manifest: {exc.strerror}.") from exc
    with handle:
        try:
            rows, errors = _read_rows(csv.DictReader(handle), root)
        except UnicodeDecodeError:
            raise ApplicationError("The manifest is not UTF-8 text.") from None
        except csv.Error as exc:
            raise ApplicationError(f"The manifest is not a readable CSV file ({exc}).") from None
    raise_problems(errors, "The manifest has {n} problem(s); nothing was imported.")
    if not rows:
        raise ApplicationError("The manifest lists no cases.")
    return rows


def _read_rows(reader: csv.DictReader, root: Path) -> tuple[list[dict], list[str]]:
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    missing = REQUIRED_COLUMNS - set(columns)
    unknown = set(columns) - REQUIRED_COLUMNS - OPTIONAL_COLUMNS
    duplicated = {c for c in columns if columns.count(c) > 1}
    if missing or unknown or duplicated:
        problems = [f"line 1: missing column {c!r}" for c in sorted(missing)]
        problems += [f"line 1: unknown column {c!r}" for c in sorted(unknown)]
        problems += [f"line 1: column {c!r} appears twice" for c in sorted(duplicated)]
        raise ApplicationError(
            "The manifest header is invalid; nothing was imported.", errors=problems
        )
    rows: list[dict] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    folders: dict[str, Path] = {}
    for raw in reader:
        line = reader.line_num
        if None in raw:
            errors.append(f"line {line}: more fields than columns")
            continue
        row, problems = _parse_row(raw, root, folders)
        if row and row["case_id"] in seen:
            problems.append(
                f"duplicate case_id {row['case_id']!r} (first on line {seen[row['case_id']]})"
            )
        if row:
            seen.setdefault(row["case_id"], line)
            row["line"] = line
        errors += [f"line {line}: {p}" for p in problems]
        if row is not None and not problems:
            rows.append(row)
    return rows, errors


def raise_problems(errors: list[str], message: str) -> None:
    if not errors:
        return
    shown = errors[:MAX_PROBLEMS_LISTED]
    more = len(errors) - len(shown)
    raise ApplicationError(
        message.format(n=len(errors)), errors=shown + ([f"... and {more} more"] if more else [])
    )


def _inside(root: Path, rel: str, what: str, problems: list[str], folders: dict) -> Path | None:
    """The file `rel` names under `root` (resolved, by parse_manifest), if it is a regular file
    that really lies there. Its folder is resolved (links followed) once per manifest and
    folder, in `folders`: resolving every path cost more than the rest of reading the
    manifest. The file itself must not be a link."""
    joined = os.path.join(root, rel)
    if not rel or joined.endswith(("/", "/.", "/..")):
        folder = None  # names a folder, not a file
    else:
        parent = os.path.dirname(joined)
        folder = folders.get(parent) or folders.setdefault(parent, Path(parent).resolve())
    if folder is None or not folder.is_relative_to(root):
        problems.append(f"{what} {rel!r} must be a path inside the manifest's folder")
        return None
    path = folder / os.path.basename(joined)
    if not _is_regular_file(path):
        problems.append(f"{what} {rel!r} does not exist")
        return None
    return path


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)  # lstat: a link is not a file here
    except OSError:
        return False


def _parse_row(raw: dict, root: Path, folders: dict) -> tuple[dict | None, list[str]]:
    problems: list[str] = []
    case_id = (raw.get("case_id") or "").strip()
    if not case_id:
        problems.append("empty case_id")
    elif len(case_id) > 128:
        problems.append("case_id is longer than 128 characters")
    label_text = (raw.get("label") or "").strip()
    if label_text not in {"0", "1"}:
        problems.append(f"label must be 0 or 1, got {label_text!r}")
    rel = (raw.get("file") or "").strip()
    if ";" in rel or "|" in rel:
        problems.append("one DICOM file per case is supported (multi-image cases are not yet)")
        path = None
    else:
        path = _inside(root, rel, "file", problems, folders)
    roi = _parse_roi(raw, problems)
    mask = _parse_mask(raw, root, problems, folders)
    if roi is not None and mask is not None:
        problems.append("give the ROI as a box or as a mask, not both")
    if problems:
        return ({"case_id": case_id} if case_id else None), problems
    extra = {k: (raw.get(k) or "").strip() or None for k in ATTRIBUTE_COLUMNS}
    return {
        "case_id": case_id,
        "path": path,
        "label": int(label_text),
        "roi": roi,
        "mask": mask,
        "extra": extra,
    }, []


def _parse_roi(raw: dict, problems: list[str]) -> list[float] | None:
    values = [(raw.get(c) or "").strip() for c in ROI_COLUMNS]
    if not any(values):
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in values)
    except ValueError:
        problems.append("ROI needs four numbers roi_x0, roi_y0, roi_x1, roi_y1")
        return None
    if not all(np.isfinite([x0, y0, x1, y1])) or not (0 <= x0 < x1 and 0 <= y0 < y1):
        problems.append(f"ROI box ({x0}, {y0}, {x1}, {y1}) is empty or negative")
        return None
    return [x0, y0, x1, y1]


def _parse_mask(raw: dict, root: Path, problems: list[str], folders: dict) -> np.ndarray | None:
    rel = (raw.get("roi_mask") or "").strip()
    if not rel:
        return None
    path = _inside(root, rel, "roi_mask", problems, folders)
    if path is None:
        return None
    if path.suffix.lower() not in MASK_SUFFIXES:
        problems.append(f"roi_mask {rel!r} must be a .png or .npy file")
        return None
    try:
        mask = load_mask(path)
    except ValueError as exc:
        problems.append(f"roi_mask {rel!r}: {exc}")
        return None
    if not mask.any():
        problems.append(f"roi_mask {rel!r} has no foreground pixel")
        return None
    return mask


def load_mask(path: Path) -> np.ndarray:
    """A binary ROI mask (non-zero = lesion) from a PNG or a .npy array, as uint8 0/1."""
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"not a readable .npy array ({exc})") from None
        if array.dtype.kind not in "biu":
            raise ValueError(f"mask dtype must be boolean or integer, got {array.dtype}")
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                if max(image.size) > MAX_MASK_SIDE:
                    raise ValueError(f"image is larger than {MAX_MASK_SIDE} pixels a side")
                array = np.asarray(image.convert("L") if image.mode not in "1LI" else image)
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"not a readable PNG ({exc})") from None
    if array.ndim != 2 or max(array.shape) > MAX_MASK_SIDE:
        raise ValueError(f"mask must be a 2-D image, got shape {array.shape}")
    return (array != 0).astype(np.uint8)
