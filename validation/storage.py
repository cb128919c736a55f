"""Content-addressed file stores: packages and reports under MEDIA_ROOT (served by no URL;
downloads go through permission-checked views), partner images under SEQUESTERED_ROOT."""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings

CHUNK = 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def place_file(root: Path, relative: str, source: Path | bytes) -> Path:
    """Write atomically (temp file + rename) and read-only; an existing file with the same
    content address is kept as it is."""
    target = root / relative
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(source, bytes):
                out.write(source)
            else:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out, CHUNK)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def media_put(relative: str, source: Path | bytes) -> Path:
    return place_file(Path(settings.MEDIA_ROOT), relative, source)


def media_path(relative: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative


def sequestered_put(relative: str, source: Path | bytes) -> Path:
    return place_file(Path(settings.SEQUESTERED_ROOT), relative, source)


def sequestered_path(relative: str) -> Path:
    return Path(settings.SEQUESTERED_ROOT) / relative


def package_relpath(sha256: str) -> str:
    return f"packages/{sha256[:2]}/{sha256}.tar"


def package_staging_path(package_id: int) -> Path:
    """Where an upload waits for its smoke test: private, outside the content-addressed store."""
    return Path(settings.PACKAGE_STAGING_ROOT) / f"{package_id}.tar"


def model_cache_path(sha256: str, model_format: str) -> Path:
    """Where warm runners find a package's model: the runner cache, by content hash."""
    return Path(settings.RUNNER_CACHE_ROOT) / sha256 / f"model.{model_format}"


class SequesteredDataError(Exception):
    """A stored case file is missing or no longer matches the hash sealed for it."""


def case_dicom_bytes(case) -> bytes:
    """The stored DICOM bytes of a case (a slice of its pack, or a whole file), checked against
    the SHA-256 the sealed version recorded: altered sequestered data is refused, never used."""
    path = sequestered_path(case.file_path)
    try:
        with open(path, "rb") as fh:
            if case.file_offset is None:
                data = fh.read()
            else:
                fh.seek(case.file_offset)
                data = fh.read(case.file_length)
    except OSError as exc:
        raise SequesteredDataError(f"case {case.case_id}: stored file unreadable ({exc})") from exc
    if hashlib.sha256(data).hexdigest() != case.file_sha256:
        raise SequesteredDataError(f"case {case.case_id}: stored bytes do not match the seal")
    return data


def case_mask_bytes(case) -> bytes:
    """The stored ROI mask of a case (a uint8 .npy written at import, `mask_path`), checked
    against the SHA-256 recorded with it, like the case's DICOM."""
    if not case.mask_path:
        raise SequesteredDataError(f"case {case.case_id}: no stored mask")
    try:
        data = sequestered_path(case.mask_path).read_bytes()
    except OSError as exc:
        raise SequesteredDataError(f"case {case.case_id}: stored mask unreadable ({exc})") from exc
    if hashlib.sha256(data).hexdigest() != case.mask_sha256:
        raise SequesteredDataError(f"case {case.case_id}: stored mask does not match its hash")
    return data
