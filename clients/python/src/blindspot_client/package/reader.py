"""Intake's reader of untrusted package archives: streamed, bounded, never extracted to disk,
and never loads the model (that runs code; only the sandboxed runner does it)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from blindspot_client.package.bounded_io import LimitedReader
from blindspot_client.package.manifest import MANIFEST_NAME, MODEL_FORMATS, MODEL_NAME

DEFAULT_MAX_ARCHIVE_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_TOTAL_BYTES = 1024 * 1024 * 1024
DEFAULT_MAX_MEMBERS = 16
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_BATCH = 1024
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_TAR_BLOCK = 512


class PackageError(Exception):
    """An invalid or hostile package. `reason` is safe to show the uploader."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _too_large() -> PackageError:
    return PackageError("the archive's decompressed size exceeds the limit")


class PackageContents(NamedTuple):
    manifest: dict[str, Any]
    model_bytes: bytes
    model_format: str  # "pt2" or "onnx"


def read_package(path: Path, **limits: int) -> tuple[dict[str, Any], bytes]:
    """(manifest, model bytes) of an untrusted package; see `read_package_contents`."""
    contents = read_package_contents(path, **limits)
    return contents.manifest, contents.model_bytes


def read_package_contents(
    path: Path,
    *,
    max_archive_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> PackageContents:
    """Read an untrusted package: its manifest and exactly one model (`model.pt2`, a
    torch.export program, or `model.onnx`), or raise `PackageError`.

    Refuses: archives over `max_archive_bytes`, more than `max_members` members, a decompressed
    size over `max_total_bytes`, absolute paths, `..`, links, devices and other non-regular
    members, unknown or duplicate members, a missing or non-JSON manifest, and a `model.pt2`
    that is not a torch.export archive (TorchScript, `torch.save` checkpoints, plain pickles),
    a `model.onnx` that is not an ONNX protobuf, and both models at once.
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
        limited = io.BufferedReader(LimitedReader(source, max_total_bytes + overhead, _too_large))
        try:
            contents = _read_members(limited, max_total_bytes, max_members)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise PackageError(
                f"the archive is not a readable tar or tar.gz file ({exc})"
            ) from None

    if MANIFEST_NAME not in contents:
        raise PackageError(f"the archive has no {MANIFEST_NAME}")
    models = [name for name in MODEL_FORMATS if name in contents]
    if not models:
        raise PackageError(f"the archive has no {MODEL_NAME} (or model.onnx)")
    if len(models) > 1:
        raise PackageError("the archive holds both model.pt2 and model.onnx; package one model")
    name = models[0]
    check = _check_pt2 if name == MODEL_NAME else _check_onnx
    return PackageContents(
        _parse_manifest(contents[MANIFEST_NAME]), check(contents[name]), MODEL_FORMATS[name]
    )


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
            if name != MANIFEST_NAME and name not in MODEL_FORMATS:
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
    raise PackageError(
        f"unexpected member {name!r}; a package holds only manifest.json and model.pt2 "
        "(or model.onnx)"
    )


def _parse_manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise PackageError(f"manifest.json is not valid UTF-8 JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise PackageError("manifest.json must hold a JSON object")
    return manifest


def _check_onnx(data: bytes) -> bytes:
    """An ONNX ModelProto starts with field 1 (ir_version, a varint): tag byte 0x08. Only the
    container is recognised here; onnxruntime parses it in the sandbox at the smoke test."""
    if data[:1] == b"\x80":
        raise PackageError("model.onnx is a Python pickle; pickled models are not accepted")
    if data[:4] == _ZIP_MAGIC:
        raise PackageError("model.onnx is a zip archive, not an ONNX model")
    if len(data) < 16 or data[:1] != b"\x08":
        raise PackageError("model.onnx is not an ONNX model (no ModelProto header)")
    return data


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
