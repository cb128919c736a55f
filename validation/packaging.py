"""Model packages: the vendor-side builder and the intake-side safe reader.

A package is one `.tar.gz` (or plain `.tar`) holding exactly two regular files:

- `model.pt2`: a `torch.export` program (`torch.export.save`), exported in eval mode with a dynamic
  batch dimension. TorchScript archives, `torch.save` checkpoints and plain pickles are refused.
- `manifest.json`: a UTF-8 JSON object with these fields (`MANIFEST_SCHEMA` is the formal form):

  ``schema_version``  "1.0".
  ``name``, ``version``  the product name and the vendor's version string.
  ``intended_use``  the vendor's intended-use statement, free text (copied into the report).
  ``indications``  list of indication statements (strings).
  ``task``  "binary-classification" (multiclass, multilabel, segmentation, detection: later).
  ``input``  what the model expects after Blindspot's pixel pipeline:
      ``modalities``  DICOM modalities accepted, e.g. ["DX", "CR"];
      ``channels``, ``height``, ``width``  the tensor shape per image (N, C, H, W);
      ``scaling``  {"method": "percentile", "low": 0.5, "high": 99.5} (percentiles of each image
          mapped to 0..1) or {"method": "window", "center": c, "width": w};
      ``resize``  "area" | "bilinear" | "nearest";
      ``mean``, ``std``  per-channel normalisation applied after scaling: (x - mean) / std.
  ``output``  how to read the model's (N, K) output:
      ``labels``  class names, negative first: ["no-lesion", "lesion"];
      ``activation``  "sigmoid" (one logit per image) or "softmax";
      ``positive_index``  the output column that carries the positive-class score (0 for a single
          sigmoid logit).
  ``threshold``  the vendor's operating point on the activated score, declared before testing and
      never tuned on test data.
  ``gradcam_target_layer``  dotted submodule path for Grad-CAM, e.g. "block3" or "layer4.1".
  ``training_data`` (optional)  {"sites": [...], "scanners": [...], "date_range": [start, end]}
      with ISO dates; used for the independence check against the test data.

`build_package` is what a vendor runs (it exports the model itself). `read_package` is what intake
runs on an untrusted upload: it never extracts to disk, never follows links, stops reading as soon
as a limit is passed, and raises `PackageError` with a reason that is safe to show the uploader.
It does not load the model: loading a `.pt2` runs code, so that happens only in the sandboxed
runner (`validation.runner`).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is the vendor-side builder's dependency; intake never imports it.
    import torch
    from torch import nn

MANIFEST_NAME = "manifest.json"
MODEL_NAME = "model.pt2"
SCHEMA_VERSION = "1.0"

DEFAULT_MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_TOTAL_BYTES = 1024 * 1024 * 1024
DEFAULT_MAX_MEMBERS = 16
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_BATCH = 1024

_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_TAR_BLOCK = 512

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}
_DOTTED_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"

MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "schema_version",
        "name",
        "version",
        "intended_use",
        "indications",
        "task",
        "input",
        "output",
        "threshold",
        "gradcam_target_layer",
    ],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "version": {"type": "string", "minLength": 1, "maxLength": 100},
        "intended_use": {"type": "string", "minLength": 1, "maxLength": 10000},
        "indications": {**_STRINGS, "minItems": 1},
        "task": {"enum": ["binary-classification"]},
        "input": {
            "type": "object",
            "additionalProperties": False,
            "required": [
                "modalities",
                "channels",
                "height",
                "width",
                "scaling",
                "resize",
                "mean",
                "std",
            ],
            "properties": {
                "modalities": {**_STRINGS, "minItems": 1},
                "channels": {"type": "integer", "minimum": 1, "maximum": 4},
                "height": {"type": "integer", "minimum": 8, "maximum": 4096},
                "width": {"type": "integer", "minimum": 8, "maximum": 4096},
                "scaling": {
                    "oneOf": [
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["method", "low", "high"],
                            "properties": {
                                "method": {"const": "percentile"},
                                "low": {"type": "number", "minimum": 0, "maximum": 100},
                                "high": {"type": "number", "minimum": 0, "maximum": 100},
                            },
                        },
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["method", "center", "width"],
                            "properties": {
                                "method": {"const": "window"},
                                "center": {"type": "number"},
                                "width": {"type": "number", "exclusiveMinimum": 0},
                            },
                        },
                    ]
                },
                "resize": {"enum": ["area", "bilinear", "nearest"]},
                "mean": {"type": "array", "items": {"type": "number"}, "minItems": 1},
                "std": {
                    "type": "array",
                    "items": {"type": "number", "exclusiveMinimum": 0},
                    "minItems": 1,
                },
            },
        },
        "output": {
            "type": "object",
            "additionalProperties": False,
            "required": ["labels", "activation", "positive_index"],
            "properties": {
                "labels": {**_STRINGS, "minItems": 2, "maxItems": 2},
                "activation": {"enum": ["sigmoid", "softmax"]},
                "positive_index": {"type": "integer", "minimum": 0},
            },
        },
        "threshold": {"type": "number", "minimum": 0, "maximum": 1},
        "gradcam_target_layer": {"type": "string", "pattern": _DOTTED_PATH, "maxLength": 200},
        "training_data": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "sites": _STRINGS,
                "scanners": _STRINGS,
                "date_range": {
                    "type": "array",
                    "items": {"type": "string", "pattern": _ISO_DATE},
                    "minItems": 2,
                    "maxItems": 2,
                },
            },
        },
    },
}


class PackageError(Exception):
    """An invalid or hostile package. `reason` is safe to show the uploader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def default_manifest(
    *,
    name: str,
    version: str,
    gradcam_target_layer: str,
    intended_use: str = (
        "Flags adult chest radiographs (DX/CR) that may contain a focal lesion, for review "
        "by a radiologist. Not for use as a sole basis for diagnosis."
    ),
    indications: list[str] | None = None,
    threshold: float = 0.5,
    training_data: dict[str, Any] | None = None,
    channels: int = 1,
    height: int = 64,
    width: int = 64,
) -> dict[str, Any]:
    """A complete binary-classification manifest with the reference pixel pipeline."""
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "intended_use": intended_use,
        "indications": indications or ["Focal lesion on frontal chest radiograph, adults"],
        "task": "binary-classification",
        "input": {
            "modalities": ["DX", "CR"],
            "channels": channels,
            "height": height,
            "width": width,
            "scaling": {"method": "percentile", "low": 0.5, "high": 99.5},
            "resize": "area",
            "mean": [0.5] * channels,
            "std": [0.25] * channels,
        },
        "output": {"labels": ["no-lesion", "lesion"], "activation": "sigmoid", "positive_index": 0},
        "threshold": threshold,
        "gradcam_target_layer": gradcam_target_layer,
    }
    if training_data is not None:
        manifest["training_data"] = training_data
    return manifest


def manifest_errors(manifest: Any) -> list[str]:
    """Every problem with `manifest` as readable strings (empty when valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)
    found = sorted(validator.iter_errors(manifest), key=lambda e: [str(p) for p in e.path])
    errors = [f"{'/'.join(str(p) for p in e.path) or '(root)'}: {e.message}" for e in found]
    if errors:
        return errors
    spec = manifest["input"]
    if not len(spec["mean"]) == len(spec["std"]) == spec["channels"]:
        errors.append("input: mean and std need one value per channel")
    scaling = spec["scaling"]
    if scaling["method"] == "percentile" and not scaling["low"] < scaling["high"]:
        errors.append("input/scaling: low must be below high")
    output = manifest["output"]
    if output["activation"] == "softmax" and output["positive_index"] > 1:
        errors.append("output/positive_index: a binary softmax output has two columns")
    date_range = manifest.get("training_data", {}).get("date_range")
    if date_range and date_range[0] > date_range[1]:
        errors.append("training_data/date_range: start is after end")
    return errors


def export_model(
    model: nn.Module, example_input: torch.Tensor, *, max_batch: int = MAX_BATCH
) -> torch.export.ExportedProgram:
    """`torch.export` the model in eval mode with a dynamic batch dimension (1..max_batch)."""
    import torch

    model.eval()
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    return torch.export.export(model, (example_input,), dynamic_shapes=({0: batch},))


def build_package(
    *,
    model: nn.Module,
    example_input: torch.Tensor,
    manifest: dict[str, Any],
    out_path: Path,
) -> Path:
    """Export `model` and write a package (`manifest.json` + `model.pt2`) to `out_path`.

    Checks what the vendor can check locally before uploading: the manifest is valid, the example
    input has the declared shape, the Grad-CAM layer exists, and the output has the column the
    manifest names. The archive is reproducible at the tar level (sorted members, mtime 0, uid and
    gid 0, no owner names, gzip mtime 0). Raises `ValueError` on any of those problems.
    """
    import torch

    errors = manifest_errors(manifest)
    if errors:
        raise ValueError("invalid manifest: " + "; ".join(errors))
    spec = manifest["input"]
    expected = (spec["channels"], spec["height"], spec["width"])
    if example_input.ndim != 4 or tuple(example_input.shape[1:]) != expected:
        raise ValueError(f"example_input must have shape (N, {', '.join(map(str, expected))})")
    if example_input.shape[0] < 2:
        # A batch of one would let torch.export specialise the batch dimension to 1.
        raise ValueError("example_input needs a batch of at least 2")
    try:
        model.get_submodule(manifest["gradcam_target_layer"])
    except AttributeError as exc:
        raise ValueError(f"gradcam_target_layer: {exc}") from None

    program = export_model(model, example_input)
    with torch.no_grad():
        output = program.module()(example_input)
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        raise ValueError("the model must return one tensor of shape (N, K)")
    if manifest["output"]["positive_index"] >= output.shape[1]:
        raise ValueError("output/positive_index is outside the model's output columns")

    pt2 = io.BytesIO()
    torch.export.save(program, pt2)
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    members = sorted({MANIFEST_NAME: manifest_bytes, MODEL_NAME: pt2.getvalue()}.items())

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".package-", dir=out_path.parent)
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
        ):
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp_name, out_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return out_path


class _LimitedReader(io.RawIOBase):
    """Counts the (decompressed) bytes read and refuses to go past `limit`: the bomb guard.

    It also bounds tarfile's own reads of pax and GNU long-name headers, whose sizes come from
    the archive and which tarfile would otherwise read into memory whole.
    """

    def __init__(self, raw: Any, limit: int) -> None:
        super().__init__()
        self._raw = raw
        self._limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._limit - self.count + 1)
        data = self._raw.read(wanted)
        self.count += len(data)
        if self.count > self._limit:
            raise PackageError("the archive's decompressed size exceeds the limit")
        buffer[: len(data)] = data
        return len(data)


def read_package(
    path: Path,
    *,
    max_archive_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> tuple[dict[str, Any], bytes]:
    """Read an untrusted package; return (manifest, model.pt2 bytes) or raise `PackageError`.

    Refuses: archives over `max_archive_bytes`, more than `max_members` members, a decompressed
    size over `max_total_bytes`, absolute paths, `..`, links, devices and other non-regular
    members, unknown or duplicate members, a missing or non-JSON manifest, and a `model.pt2`
    that is not a torch.export archive (TorchScript, `torch.save` checkpoints, plain pickles).
    Reads as a stream and stops at the first violation; nothing is written to disk. The manifest
    is parsed but not schema-checked: call `manifest_errors` for that.
    """
    path = Path(path)
    if path.stat().st_size > max_archive_bytes:
        raise PackageError(f"the archive is larger than {max_archive_bytes} bytes")
    with path.open("rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        _refuse_non_tar(magic)
        source = gzip.GzipFile(fileobj=raw, mode="rb") if magic[:2] == _GZIP_MAGIC else raw
        # Headers and padding come on top of member data: allow one block each plus two
        # header blocks per member and the end-of-archive record (tarfile reads 20 blocks).
        overhead = (3 * max_members + 40) * _TAR_BLOCK
        limited = io.BufferedReader(_LimitedReader(source, max_total_bytes + overhead))
        try:
            contents = _read_members(limited, max_total_bytes, max_members)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise PackageError(
                f"the archive is not a readable tar or tar.gz file ({exc})"
            ) from None

    for required in (MANIFEST_NAME, MODEL_NAME):
        if required not in contents:
            raise PackageError(f"the archive has no {required}")
    return _parse_manifest(contents[MANIFEST_NAME]), _check_pt2(contents[MODEL_NAME])


def _refuse_non_tar(magic: bytes) -> None:
    if magic == _ZIP_MAGIC:
        raise PackageError(
            "the upload is a zip file (TorchScript or torch.save); a package is a tar.gz "
            "holding manifest.json and model.pt2"
        )
    if magic[:1] == b"\x80":
        raise PackageError("the upload is a Python pickle; pickled models are not accepted")


def _read_members(stream: Any, max_total_bytes: int, max_members: int) -> dict[str, bytes]:
    contents: dict[str, bytes] = {}
    unknown: list[str] = []
    total = 0
    count = 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            count += 1
            if count > max_members:
                raise PackageError(f"the archive has more than {max_members} members")
            name = _check_member(member)
            total += member.size
            if total > max_total_bytes:
                raise PackageError("the archive's decompressed size exceeds the limit")
            if name not in (MANIFEST_NAME, MODEL_NAME):
                unknown.append(name)  # refused below, once every header has passed the checks
                continue
            if name in contents:
                raise PackageError(f"the archive holds {name} twice")
            limit = MAX_MANIFEST_BYTES if name == MANIFEST_NAME else max_total_bytes
            if member.size > limit:
                raise PackageError(f"{name} is larger than the limit")
            handle = tar.extractfile(member)
            data = handle.read(member.size) if handle is not None else b""
            if len(data) != member.size:
                raise PackageError(f"{name} is truncated")
            contents[name] = data
    if unknown:
        _refuse_unknown(unknown[0])
    return contents


def _check_member(member: tarfile.TarInfo) -> str:
    name = member.name
    if name.startswith("./"):
        name = name[2:]
    parts = PurePosixPath(name).parts
    if name.startswith("/") or "\\" in name or (parts and parts[0].endswith(":")):
        raise PackageError(f"member {member.name!r} has an absolute path")
    if ".." in parts:
        raise PackageError(f"member {member.name!r} points outside the archive ('..')")
    if member.issym() or member.islnk():
        raise PackageError(f"member {member.name!r} is a link; links are not accepted")
    if member.ischr() or member.isblk() or member.isfifo():
        raise PackageError(f"member {member.name!r} is a device or FIFO")
    if not member.isfile():
        raise PackageError(f"member {member.name!r} is not a regular file")
    return name


def _refuse_unknown(name: str) -> None:
    if name == "model.onnx":
        raise PackageError("ONNX models are not supported yet; package a model.pt2")
    raise PackageError(
        f"unexpected member {name!r}; a package holds only manifest.json and model.pt2"
    )


def _parse_manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PackageError(f"manifest.json is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise PackageError("manifest.json must hold a JSON object")
    return manifest


def _check_pt2(data: bytes) -> bytes:
    """Recognise the container format only; the content is untrusted until the sandbox runs it."""
    if data[:1] == b"\x80":
        raise PackageError("model.pt2 is a plain Python pickle; pickled models are not accepted")
    if data[:4] != _ZIP_MAGIC:
        raise PackageError("model.pt2 is not a torch.export archive")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            formats = [n for n in names if n.endswith("/archive_format") or n == "archive_format"]
            if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
                raise PackageError(
                    "model.pt2 is a TorchScript archive; export the model with torch.export"
                )
            if not formats:
                if any(n.endswith("data.pkl") for n in names):
                    raise PackageError(
                        "model.pt2 is a torch.save checkpoint (a pickle); export the model "
                        "with torch.export"
                    )
                raise PackageError("model.pt2 is not a torch.export archive")
            marker = archive.getinfo(formats[0])
            if marker.file_size > 64 or archive.read(marker).strip() != b"pt2":
                raise PackageError("model.pt2 is not a torch.export archive")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError, EOFError) as exc:
        raise PackageError(f"model.pt2 is not a readable archive ({exc})") from None
    return data
