"""One partner file through intake: hash, parse, decode, identity policy, store.

No Django here: `ingest_files` fans files out to worker processes, and each file is read from disk
once. The bytes are hashed, parsed from memory, decoded (the check that a model could be fed
this file), attributes are taken before de-identification, and what is stored is the
de-identified file (or, under the 'reject' policy, the original, once it is shown to carry no
identifying element). A file that cannot be read, decoded or cleared is never stored: it comes
back with its reason so that the case is recorded and counted, never dropped.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from validation.ml.deidentify import deidentify, identifying_elements
from validation.ml.preprocess import DicomReadError, decode_dicom, dicom_attributes, parse_dicom

IDENTITY_POLICIES = ("deidentify", "reject")
MAX_TAGS_LISTED = 12
CHUNK_FILES = 16


@dataclass(frozen=True)
class IngestPolicy:
    """What a worker needs to take in one file: the dataset's identity policy, the secret that
    keys replacement UIDs (consistent within a dataset, irreversible without it), and the
    sequestered store's root."""

    identity: str
    uid_secret: bytes
    store_root: Path

    def __post_init__(self) -> None:
        # A plain str: a Django TextChoices member would drag the models into worker processes.
        object.__setattr__(self, "identity", str(self.identity))
        object.__setattr__(self, "store_root", Path(self.store_root))
        if self.identity not in IDENTITY_POLICIES:
            raise ValueError(f"identity policy must be one of {', '.join(IDENTITY_POLICIES)}")


@dataclass
class IngestedFile:
    """The outcome for one file. `relpath` and `stored_sha256` are set only when it was stored;
    `error` says why not."""

    source_sha256: str
    stored_sha256: str = ""
    relpath: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    shape: tuple[int, int] | None = None
    error: str = ""


def dicom_relpath(sha256: str) -> str:
    return f"dicom/{sha256[:2]}/{sha256}.dcm"


def ingest_file(path: str | os.PathLike, policy: IngestPolicy) -> IngestedFile:
    data = Path(path).read_bytes()
    result = IngestedFile(source_sha256=hashlib.sha256(data).hexdigest())
    try:
        ds = parse_dicom(data)
    except DicomReadError as exc:
        result.error = exc.reason
        return result
    try:
        image = decode_dicom(ds)
    except DicomReadError as exc:
        result.attributes = dicom_attributes(ds)
        result.error = exc.reason
        return result
    result.attributes = image.attributes
    result.shape = image.pixels.shape
    if policy.identity == "reject":
        found = identifying_elements(ds)
        if found:
            shown = ", ".join(found[:MAX_TAGS_LISTED])
            more = (
                f" and {len(found) - MAX_TAGS_LISTED} more" if len(found) > MAX_TAGS_LISTED else ""
            )
            result.error = f"identifying elements present (policy: reject): {shown}{more}"
            return result
        stored = data
    else:
        try:
            deidentify(ds, uid_secret=policy.uid_secret)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            stored = buffer.getvalue()
        except Exception as exc:  # a header the writer cannot re-encode: not storable as is
            result.error = f"could not be de-identified: {type(exc).__name__}: {exc}"[:300]
            return result
    result.stored_sha256 = hashlib.sha256(stored).hexdigest()
    result.relpath = dicom_relpath(result.stored_sha256)
    _place(policy.store_root / result.relpath, stored)
    return result


def _place(target: Path, data: bytes) -> None:
    """Atomic, read-only, content-addressed: an existing file with this address is kept."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ingest_files(
    paths: Iterable[str | os.PathLike], policy: IngestPolicy, *, workers: int = 1
) -> Iterator[IngestedFile]:
    """Ingest files in order, in `workers` processes (1: in this process). Results come back in
    the order of `paths`."""
    paths = [str(p) for p in paths]
    if workers <= 1 or len(paths) < 2 * CHUNK_FILES:
        for path in paths:
            yield ingest_file(path, policy)
        return
    # forkserver: children fork from a clean server process, not from a Django process holding
    # database connections and threads; they import only this module's pure dependencies.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["validation.ingest"])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(
            ingest_file, paths, [policy] * len(paths), chunksize=_chunk(len(paths), workers)
        )


def _chunk(n: int, workers: int) -> int:
    return max(1, min(CHUNK_FILES, n // (4 * workers) or 1))


def mask_bbox(mask: np.ndarray) -> list[float] | None:
    """The bounding box [x0, y0, x1, y1] (pixel edges) of a binary mask's foreground."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
