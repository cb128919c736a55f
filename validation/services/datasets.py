"""Partner datasets: import a version from a manifest CSV + DICOM files, seal it, grant its use.

An import reads a directory or an archive (staged in a private folder under the sequestered
store), checks the whole manifest, then takes every file through `validation.ingest` (hash,
parse, decode, identity policy) into a staging store. Only when every row is sound are the files
moved into the sequestered store and the version sealed with a Merkle root; on any problem the
import is refused with each problem by line and nothing is stored. Unreadable files, and files
refused by the identity policy, become cases with their reason, never dropped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from validation.dataset_sources import DatasetSourceError, find_manifest, staged_dataset_source
from validation.errors import ApplicationError, PermissionDenied
from validation.ingest import IngestedFile, IngestPolicy, ingest_files, mask_bbox, start_workers
from validation.merkle import merkle_root
from validation.models import (
    Case,
    Dataset,
    DatasetGrant,
    DatasetVersion,
    Organisation,
    Protocol,
    Role,
)
from validation.selectors import org_ids_of
from validation.storage import place_file

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = {"case_id", "file", "label"}
ROI_COLUMNS = ("roi_x0", "roi_y0", "roi_x1", "roi_y1")
ATTRIBUTE_COLUMNS = ("race", "ethnicity", "site")
OPTIONAL_COLUMNS = {*ROI_COLUMNS, "roi_mask", *ATTRIBUTE_COLUMNS}
MASK_SUFFIXES = (".png", ".npy")
MAX_ERRORS_LISTED = 50
MAX_MASK_SIDE = 8192
PROGRESS_EVERY = 100

Progress = Callable[[int, int], None]


def require_steward(actor, partner: Organisation) -> None:
    if partner.pk not in org_ids_of(actor, Role.PARTNER_STEWARD):
        raise PermissionDenied("Only a steward of this partner may manage its datasets.")


@transaction.atomic
def dataset_create(
    *,
    actor,
    partner: Organisation,
    name: str,
    description: str = "",
    identity_policy: str = Dataset.IdentityPolicy.DEIDENTIFY,
    card_min_cell: int = 5,
) -> Dataset:
    """Register a dataset for a partner. Emits DATASET_CREATED."""
    require_steward(actor, partner)
    if identity_policy not in Dataset.IdentityPolicy.values:
        raise ApplicationError(
            f"identity_policy must be one of {', '.join(Dataset.IdentityPolicy.values)}."
        )
    if not 2 <= card_min_cell <= 1000:
        raise ApplicationError("card_min_cell must be between 2 and 1000.")
    if Dataset.objects.filter(partner=partner, name=name).exists():
        raise ApplicationError(f"The dataset {name!r} already exists.", status_code=409)
    dataset = Dataset.objects.create(
        partner=partner,
        name=name,
        description=description,
        identity_policy=identity_policy,
        card_min_cell=card_min_cell,
    )
    audit_record(
        actor=actor,
        action=AuditAction.DATASET_CREATED,
        target=dataset,
        payload={"name": name, "identity_policy": identity_policy},
    )
    return dataset


# --- the manifest -------------------------------------------------------------------------------


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
    _raise_if(errors, "The manifest has {n} problem(s); nothing was imported.")
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
    rows, errors, seen, folders = [], [], {}, {}
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
        if not problems:
            rows.append(row)
    return rows, errors


def _raise_if(errors: list[str], message: str) -> None:
    if not errors:
        return
    shown = errors[:MAX_ERRORS_LISTED]
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


# --- the import ---------------------------------------------------------------------------------


def _workers() -> int:
    return max(1, int(getattr(settings, "DATASET_IMPORT_WORKERS", os.cpu_count() or 1)))


def dataset_version_import(
    *,
    actor,
    dataset: Dataset,
    source: Path,
    workers: int | None = None,
    progress: Progress | None = None,
) -> DatasetVersion:
    """Import and seal a new version of `dataset` from `source`: a directory or a zip/tar
    archive holding a manifest CSV (``manifest.csv``, or a CSV file given directly) and the
    files it lists. Refuses with every problem by line, storing nothing; audits the refusal.
    Emits DATASET_VERSION_IMPORTED and DATASET_VERSION_SEALED."""
    require_steward(actor, dataset.partner)
    staging_root = Path(settings.SEQUESTERED_ROOT) / "incoming"
    source = Path(source)
    given_csv = source.is_file() and source.suffix.lower() == ".csv"
    try:
        with (
            nullcontext(source.parent)
            if given_csv
            else staged_dataset_source(
                source,
                staging_root=staging_root,
                max_archive_bytes=settings.DATASET_MAX_ARCHIVE_BYTES,
                max_total_bytes=settings.DATASET_MAX_UNPACKED_BYTES,
            )
        ) as root:
            manifest = source if given_csv else find_manifest(root)
            version = _import_rows(
                actor, dataset, manifest, staging_root, workers or _workers(), progress
            )
    except DatasetSourceError as exc:
        _refuse(actor, dataset, ApplicationError(f"The source was refused: {exc.reason}"))
    except ApplicationError as exc:
        _refuse(actor, dataset, exc)
    return version


def _refuse(actor, dataset: Dataset, exc: ApplicationError):
    """Audit the refusal in its own transaction (it must outlive the error) and raise it."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.DATASET_IMPORT_REFUSED,
            target=dataset,
            payload={"reason": exc.message[:500], "errors": exc.errors[:MAX_ERRORS_LISTED]},
        )
    raise exc


def _import_rows(
    actor, dataset: Dataset, manifest: Path, staging_root: Path, workers: int, progress
) -> DatasetVersion:
    started = time.monotonic()
    if workers > 1:
        start_workers()  # the worker server starts while the manifest is read
    rows = parse_manifest(manifest)
    staging_root.mkdir(parents=True, exist_ok=True)
    store = Path(tempfile.mkdtemp(prefix="store-", dir=staging_root))
    try:
        policy = IngestPolicy(
            identity=dataset.identity_policy,
            uid_secret=bytes.fromhex(dataset.uid_secret),
            store_root=store,
            pack_dir=f"packs/{store.name}",
        )
        results = []
        for done, result in enumerate(
            ingest_files([r["path"] for r in rows], policy, workers=workers), start=1
        ):
            results.append(result)
            if progress and (done % PROGRESS_EVERY == 0 or done == len(rows)):
                progress(done, len(rows))
        _raise_if(
            _reference_errors(rows, results),
            "The reference standard has {n} problem(s); nothing was imported.",
        )
        cases = [_case(row, result, store) for row, result in zip(rows, results, strict=True)]
        _commit_store(store, Path(settings.SEQUESTERED_ROOT))
    finally:
        shutil.rmtree(store, ignore_errors=True)
    return _version_store(
        actor=actor, dataset=dataset, cases=cases, seconds=time.monotonic() - started
    )


def _reference_errors(rows: list[dict], results: list[IngestedFile]) -> list[str]:
    """ROIs must lie on the image they annotate; known only once the file is decoded."""
    errors = []
    for row, result in zip(rows, results, strict=True):
        if result.shape is None:
            continue
        height, width = result.shape
        if row["roi"] is not None:
            x0, y0, x1, y1 = row["roi"]
            if x1 > width or y1 > height:
                errors.append(
                    f"line {row['line']}: ROI box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies outside "
                    f"the {width}x{height} image"
                )
        if row["mask"] is not None and row["mask"].shape != (height, width):
            mh, mw = row["mask"].shape
            errors.append(
                f"line {row['line']}: roi_mask is {mw}x{mh} but the image is {width}x{height}"
            )
    return errors


def _case(row: dict, result: IngestedFile, store: Path) -> Case:
    attributes = dict(result.attributes)
    attributes.update({k: v for k, v in row["extra"].items() if v is not None})
    roi, mask_path, mask_sha = row["roi"], "", ""
    if row["mask"] is not None:
        mask_path, mask_sha = _stage_mask(store, row["mask"])
        roi = mask_bbox(row["mask"])
    return Case(
        case_id=row["case_id"],
        file_path=result.relpath,
        file_offset=result.offset,
        file_length=result.length,
        file_sha256=result.stored_sha256 or result.source_sha256,
        source_sha256=result.source_sha256,
        label=row["label"],
        roi=roi,
        mask_path=mask_path,
        mask_sha256=mask_sha,
        attributes=attributes,
        read_error=result.error[:500],
    )


def _stage_mask(store: Path, mask: np.ndarray) -> tuple[str, str]:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(mask, dtype=np.uint8), allow_pickle=False)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    relpath = f"masks/{sha[:2]}/{sha}.npy"
    place_file(store, relpath, data)
    return relpath, sha


def _commit_store(store: Path, root: Path) -> None:
    """Move staged files (packs and masks) into the sequestered store, read-only (same
    filesystem: a rename each). A mask already there has the same content address and is kept;
    packs are named by their import's unique staging folder."""
    for dirpath, _dirs, files in os.walk(store):
        for name in files:
            staged = Path(dirpath) / name
            target = root / staged.relative_to(store)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.chmod(0o444)
            os.replace(staged, target)


def _insert_cases(cases: list[Case]) -> None:
    """Insert the rows with one executemany. `bulk_create` compiles SQL per field and row
    (~0.1 ms a case, a tenth of the import's time with two workers, spent after they finish);
    here each field still adapts its own value for this database (`get_db_prep_save`: JSON,
    foreign keys), and the database enforces the same constraints and triggers."""
    fields = [f for f in Case._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(Case._meta.db_table)} "  # noqa: S608 - quoted model identifiers; values are parameters
        f"({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    rows = [[f.get_db_prep_save(f.pre_save(c, True), connection) for f in fields] for c in cases]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


@transaction.atomic
def _version_store(*, actor, dataset: Dataset, cases: list[Case], seconds: float) -> DatasetVersion:
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    number = (
        dataset.versions.order_by("-version").values_list("version", flat=True).first() or 0
    ) + 1
    modalities = sorted({c.attributes.get("modality") for c in cases} - {None})
    version = DatasetVersion.objects.create(
        dataset=dataset,
        version=number,
        created_by=actor,
        modality="/".join(modalities)[:16],
        identity_policy=dataset.identity_policy,
        import_seconds=round(seconds, 3),
    )
    for case in cases:
        case.dataset_version = version
    _insert_cases(cases)
    unreadable = sum(1 for c in cases if c.read_error)
    audit_record(
        actor=actor,
        action=AuditAction.DATASET_VERSION_IMPORTED,
        target=version,
        payload={
            "cases": len(cases),
            "unreadable": unreadable,
            "identity_policy": dataset.identity_policy,
        },
    )
    root = merkle_root([(c.case_id, c.file_sha256, c.label) for c in cases])
    DatasetVersion.objects.filter(pk=version.pk).update(
        status=DatasetVersion.Status.SEALED, merkle_root=root, sealed_at=timezone.now()
    )
    version.refresh_from_db()
    audit_record(
        actor=actor,
        action=AuditAction.DATASET_VERSION_SEALED,
        target=version,
        payload={"merkle_root": root, "cases": len(cases)},
    )
    return version


# --- use control --------------------------------------------------------------------------------


@transaction.atomic
def dataset_grant(
    *,
    actor,
    dataset_version: DatasetVersion,
    vendor: Organisation | None,
    protocol: Protocol | None = None,
    allow_exemplars: bool = False,
    max_runs: int | None = None,
) -> DatasetGrant:
    """The partner allows a vendor (None: any vendor) to be validated on this version under a
    protocol (None: any), at most `max_runs` times per vendor (None: no cap beyond the
    protocol's). Emits DATASET_GRANTED."""
    require_steward(actor, dataset_version.dataset.partner)
    if dataset_version.status != DatasetVersion.Status.SEALED:
        raise ApplicationError("Only a sealed dataset version can be granted.")
    if vendor is not None and vendor.kind != Organisation.Kind.VENDOR:
        raise ApplicationError("Grants are given to vendor organisations.")
    if max_runs is not None and max_runs < 1:
        raise ApplicationError("max_runs must be at least 1 (or left out for no cap).")
    grant = DatasetGrant.objects.create(
        dataset_version=dataset_version,
        vendor=vendor,
        protocol=protocol,
        allow_exemplars=allow_exemplars,
        max_runs=max_runs,
        granted_by=actor,
    )
    audit_record(
        actor=actor,
        action=AuditAction.DATASET_GRANTED,
        target=grant,
        payload={
            "vendor": vendor.name if vendor else "any",
            "protocol": str(protocol) if protocol else "any",
            "allow_exemplars": allow_exemplars,
            "max_runs": max_runs,
        },
    )
    return grant


@transaction.atomic
def dataset_grant_revoke(*, actor, grant: DatasetGrant) -> DatasetGrant:
    """Withdraw a grant: no new run may start under it, and queued runs that no other grant
    covers stop before inference. Emits DATASET_GRANT_REVOKED."""
    grant = (
        DatasetGrant.objects.select_for_update()
        .select_related("dataset_version__dataset__partner")
        .get(pk=grant.pk)
    )
    require_steward(actor, grant.dataset_version.dataset.partner)
    if grant.revoked_at is not None:
        raise ApplicationError("This grant is already revoked.", status_code=409)
    DatasetGrant.objects.filter(pk=grant.pk).update(revoked_at=timezone.now(), revoked_by=actor)
    grant.refresh_from_db()
    audit_record(
        actor=actor,
        action=AuditAction.DATASET_GRANT_REVOKED,
        target=grant,
        payload={"vendor": grant.vendor.name if grant.vendor else "any"},
    )
    return grant
