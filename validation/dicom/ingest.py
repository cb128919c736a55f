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
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

import numpy as np

from validation.dicom.deidentify import deidentify, encode_file, identifying_elements
from validation.dicom.pixels import (
    DicomReadError,
    check_decodable,
    dicom_attributes,
    parse_dicom,
)
from validation.dicom.splice import snapshot, splice_deidentified

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
    pack_dir: str = "packs/import"  # relative to store_root; unique per import

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
    relpath: str = ""  # the pack file, relative to the store root
    offset: int | None = None  # where the file's bytes start in the pack
    length: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    shape: tuple[int, int] | None = None
    error: str = ""


# Open pack files of this process: path -> fd. One writer per pack (one per process), so the
# size before a write is the offset of what it appends.
_PACKS: dict[Path, int] = {}


def ingest_file(path: str | os.PathLike, policy: IngestPolicy) -> IngestedFile:
    data = Path(path).read_bytes()
    result = IngestedFile(source_sha256=hashlib.sha256(data).hexdigest())
    try:
        ds = parse_dicom(data)
    except DicomReadError as exc:
        result.error = exc.reason
        return result
    read = snapshot(ds, data)
    try:
        result.shape = check_decodable(ds)
    except DicomReadError as exc:
        result.error = exc.reason
        return result
    finally:
        # Before any de-identification; after the decode, which already read the image module.
        result.attributes = dicom_attributes(ds)
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
            spliced = splice_deidentified(ds, read, policy.uid_secret)
            if spliced is None:
                deidentify(ds, uid_secret=policy.uid_secret)
                spliced = encode_file(ds)
            stored = spliced
        except Exception as exc:  # e.g. no SOP Class UID: not storable as a Part-10 file
            result.error = f"could not be de-identified: {type(exc).__name__}: {exc}"[:300]
            return result
    result.stored_sha256 = hashlib.sha256(stored).hexdigest()
    result.relpath = f"{policy.pack_dir}/{os.getpid()}.pack"
    result.offset, result.length = _append(policy.store_root / result.relpath, stored), len(stored)
    return result


def _append(pack: Path, data: bytes) -> int:
    """Append one file to this process's pack and return its offset. Creating a file costs about
    a millisecond on the service's disk, as much as decoding one; a dataset version's files
    therefore go into a few append-only packs (one per ingest process), each case recording
    its offset, length and SHA-256 (checked on every read, see storage.case_dicom_bytes)."""
    fd = _PACKS.get(pack)
    if fd is None:
        pack.parent.mkdir(parents=True, exist_ok=True)
        fd = _PACKS[pack] = os.open(pack, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    offset = os.fstat(fd).st_size
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return offset


def close_packs() -> None:
    while _PACKS:
        os.close(_PACKS.popitem()[1])


def ingest_files(
    paths: Iterable[str | os.PathLike], policy: IngestPolicy, *, workers: int = 1
) -> Iterator[IngestedFile]:
    """Ingest files in order, in `workers` processes (1: in this process). Results come back in
    the order of `paths`."""
    paths = [str(p) for p in paths]
    if workers <= 1 or len(paths) < 2 * CHUNK_FILES:
        try:
            for path in paths:
                yield ingest_file(path, policy)
        finally:
            close_packs()
        return
    context = start_workers()
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(
            ingest_file, paths, [policy] * len(paths), chunksize=_chunk(len(paths), workers)
        )


def start_workers() -> multiprocessing.context.BaseContext:
    """Start (once per process) the server that ingest workers fork from, and return its context.

    forkserver: children fork from a clean server process, not from a Django process holding
    database connections and threads, and they import only this module's pure dependencies.
    The server imports them once (about half a second); calling this before other work (reading
    the manifest) overlaps that with it, and later imports in the same process fork at once."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["validation.dicom.ingest"])
    forkserver.ensure_running()
    return context


def _chunk(n: int, workers: int) -> int:
    return max(1, min(CHUNK_FILES, n // (4 * workers) or 1))


def mask_bbox(mask: np.ndarray) -> list[float] | None:
    """The bounding box [x0, y0, x1, y1] (pixel edges) of a binary mask's foreground."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
