"""Partner datasets: import a version from a manifest CSV + DICOM files, seal it, grant its use.

An import reads a directory or an archive (staged in a private folder under the sequestered
store), checks the whole manifest, then takes every file through `validation.dicom.ingest` (hash,
parse, decode, identity policy) into a staging store. Only when every row is sound are the files
moved into the sequestered store and the version sealed with a Merkle root; on any problem the
import is refused with each problem by line and nothing is stored. Everything an import stores
(packs and ROI masks) lies in one folder, `packs/<its staging name>`, renamed into the store as
the last step of the sealing transaction and removed again if that transaction fails, so files
land only with a committed version. Unreadable files, and files
refused by the identity policy, become cases with their reason, never dropped.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
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
from validation.dicom.ingest import (
    IngestedFile,
    IngestPolicy,
    ingest_files,
    mask_bbox,
    start_workers,
)
from validation.dicom.manifest import MAX_PROBLEMS_LISTED, parse_manifest, raise_problems
from validation.dicom.merkle import merkle_root
from validation.dicom.sources import DatasetSourceError, find_manifest, staged_dataset_source
from validation.errors import ApplicationError, PermissionDenied
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
from validation.study_card import (
    FILE_NAME as STUDY_CARD_FILE,
)
from validation.study_card import (
    MAX_BYTES as STUDY_CARD_MAX_BYTES,
)
from validation.study_card import (
    StudyCardError,
    study_card_errors,
    study_card_hash,
    study_card_parse,
    study_card_read,
)

log = logging.getLogger(__name__)

PROGRESS_EVERY = 100
REVOKE_REASON_MAX = 500

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


@transaction.atomic
def dataset_study_card_draft_save(*, actor, dataset: Dataset, card: dict) -> Dataset:
    """Keep `card` as the dataset's draft study card: the next version sealed from an import
    that carries no card of its own takes it (and freezes it). A sealed version's card never
    changes: this writes only the dataset's draft. Refuses an invalid card with every problem
    at its path (`study_card.reference_standard.readers`). Emits DATASET_STUDY_CARD_DRAFTED
    with the draft's SHA-256."""
    require_steward(actor, dataset.partner)
    problems = study_card_errors(card)
    if problems:
        raise ApplicationError(
            f"The study card is invalid ({len(problems)} problem(s)).",
            errors=[_problem_at(p) for p in problems],
        )
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    dataset.study_card_draft = card
    dataset.save(update_fields=["study_card_draft"])
    audit_record(
        actor=actor,
        action=AuditAction.DATASET_STUDY_CARD_DRAFTED,
        target=dataset,
        payload={"study_card_sha256": study_card_hash(card)},
    )
    return dataset


def _problem_at(problem: str) -> dict:
    path, _, detail = problem.partition(": ")
    return {"path": path.replace("/", "."), "detail": detail}


def study_card_check(card) -> dict:
    """A study card given with an import (the API's or the web form's upload), checked before
    anything is stored: the card, or an ApplicationError with every problem at its path."""
    problems = study_card_errors(card) if isinstance(card, dict) else ["study_card: not an object"]
    if problems:
        raise ApplicationError(
            f"The study card has {len(problems)} problem(s); nothing was imported.",
            errors=problems,
        )
    return card


def study_card_from_upload(upload) -> dict:
    """The study card in an uploaded JSON file (read up to its size limit), checked: the card,
    or an ApplicationError with every problem at its path."""
    if upload.size is not None and upload.size > STUDY_CARD_MAX_BYTES:
        raise ApplicationError(f"The study card is larger than {STUDY_CARD_MAX_BYTES} bytes.")
    data = b"".join(upload.chunks())
    try:
        return study_card_parse(data)
    except StudyCardError as exc:
        raise ApplicationError(
            f"The study card has {len(exc.problems)} problem(s); nothing was imported.",
            errors=exc.problems,
        ) from None


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
    work_root: Path | None = None,
    on_seal: Callable[[DatasetVersion], None] | None = None,
    study_card: dict | None = None,
) -> DatasetVersion:
    """Import and seal a new version of `dataset` from `source`: a directory or a zip/tar
    archive holding a manifest CSV (``manifest.csv``, or a CSV file given directly) and the
    files it lists. Refuses with every problem by line, storing nothing; audits the refusal.
    The version's study card is `study_card`, else a ``study_card.json`` beside the manifest
    (both at once are refused), else the dataset's draft, else empty; it is checked before
    any file is read and frozen with the seal.
    `work_root` (default: the store's `incoming` folder) holds the unpacked archive and the
    staged files while it runs; `on_seal(version)` runs inside the sealing transaction (an
    exception there undoes the version and its files). Emits DATASET_VERSION_IMPORTED and
    DATASET_VERSION_SEALED."""
    require_steward(actor, dataset.partner)
    staging_root = Path(work_root or Path(settings.SEQUESTERED_ROOT) / "incoming")
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
            card = _import_study_card(study_card, manifest.parent / STUDY_CARD_FILE)
            version = _import_rows(
                actor,
                dataset,
                manifest,
                staging_root,
                workers or _workers(),
                progress,
                on_seal,
                card,
            )
    except DatasetSourceError as exc:
        _refuse(actor, dataset, ApplicationError(f"The source was refused: {exc.reason}"))
    except ApplicationError as exc:
        _refuse(actor, dataset, exc)
    return version


def _import_study_card(given: dict | None, beside: Path) -> dict | None:
    """The import's own study card, checked: the one given, or the file beside the manifest."""
    if given is not None:
        if beside.exists() or beside.is_symlink():
            raise ApplicationError(
                f"The import carries two study cards (one given with the upload and "
                f"{STUDY_CARD_FILE} beside the manifest); keep one."
            )
        return study_card_check(given)
    if not (beside.exists() or beside.is_symlink()):
        return None
    try:
        return study_card_read(beside)
    except StudyCardError as exc:
        raise ApplicationError(
            f"The study card has {len(exc.problems)} problem(s); nothing was imported.",
            errors=exc.problems,
        ) from None


def _refuse(actor, dataset: Dataset, exc: ApplicationError):
    """Audit the refusal in its own transaction (it must outlive the error) and raise it."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.DATASET_IMPORT_REFUSED,
            target=dataset,
            payload={"reason": exc.message[:500], "errors": exc.errors[:MAX_PROBLEMS_LISTED]},
        )
    exc.audited = True
    raise exc


def _import_rows(
    actor,
    dataset: Dataset,
    manifest: Path,
    staging_root: Path,
    workers: int,
    progress,
    on_seal,
    study_card: dict | None,
) -> DatasetVersion:
    started = time.monotonic()
    if workers > 1:
        start_workers()  # the worker server starts while the manifest is read
    rows = parse_manifest(manifest)
    staging_root.mkdir(parents=True, exist_ok=True)
    store = Path(tempfile.mkdtemp(prefix="store-", dir=staging_root))
    pack_dir = f"packs/{store.name}"
    try:
        policy = IngestPolicy(
            identity=dataset.identity_policy,
            uid_secret=bytes.fromhex(dataset.uid_secret),
            store_root=store,
            pack_dir=pack_dir,
        )
        results = []
        for done, result in enumerate(
            ingest_files([r["path"] for r in rows], policy, workers=workers), start=1
        ):
            results.append(result)
            if progress and (done % PROGRESS_EVERY == 0 or done == len(rows)):
                progress(done, len(rows))
        raise_problems(
            _reference_errors(rows, results),
            "The reference standard has {n} problem(s); nothing was imported.",
        )
        cases = [
            _case(row, result, store, pack_dir) for row, result in zip(rows, results, strict=True)
        ]
        return _seal(
            actor=actor,
            dataset=dataset,
            cases=cases,
            staged=store / pack_dir,
            seconds=time.monotonic() - started,
            on_seal=on_seal,
            study_card=study_card,
        )
    finally:
        shutil.rmtree(store, ignore_errors=True)


def _seal(
    *,
    actor,
    dataset: Dataset,
    cases: list[Case],
    staged: Path,
    seconds: float,
    on_seal,
    study_card: dict | None,
) -> DatasetVersion:
    """Store the version's rows and seal it, rename the staged folder into the sequestered
    store, then `on_seal`, all in one transaction. If anything fails, the commit included, the
    renamed folder is removed: no file without its committed version."""
    target = Path(settings.SEQUESTERED_ROOT) / staged.parent.name / staged.name
    try:
        with transaction.atomic():
            version = _version_store(
                actor=actor, dataset=dataset, cases=cases, seconds=seconds, study_card=study_card
            )
            _commit_store(staged, target)
            if on_seal is not None:
                on_seal(version)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return version


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


def _case(row: dict, result: IngestedFile, store: Path, pack_dir: str) -> Case:
    attributes = dict(result.attributes)
    attributes.update({k: v for k, v in row["extra"].items() if v is not None})
    roi, mask_path, mask_sha = row["roi"], "", ""
    if row["mask"] is not None:
        mask_path, mask_sha = _stage_mask(store, pack_dir, row["mask"])
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


def _stage_mask(store: Path, pack_dir: str, mask: np.ndarray) -> tuple[str, str]:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(mask, dtype=np.uint8), allow_pickle=False)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    relpath = f"{pack_dir}/masks/{sha[:2]}/{sha}.npy"  # with the import's packs: one folder
    place_file(store, relpath, data)
    return relpath, sha


def _commit_store(staged: Path, target: Path) -> None:
    """Make the staged files read-only and rename their folder (packs and masks) into the
    sequestered store: one rename, same filesystem. Nothing staged (every file unreadable):
    nothing to move."""
    if not staged.is_dir():
        return
    for dirpath, _dirs, files in os.walk(staged):
        for name in files:
            (Path(dirpath) / name).chmod(0o444)
    target.parent.mkdir(parents=True, exist_ok=True)
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
def _version_store(
    *, actor, dataset: Dataset, cases: list[Case], seconds: float, study_card: dict | None
) -> DatasetVersion:
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    # The import's own card, else the partner's draft (read under the dataset's lock, so an edit
    # saved meanwhile is either in this seal or after it), else an empty card: every entry
    # missing, and printed as missing.
    card_source = "import" if study_card is not None else "draft"
    if study_card is None:
        study_card = dataset.study_card_draft
    if study_card is None:
        study_card, card_source = {}, "none"
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
        study_card=study_card,
        study_card_sha256=study_card_hash(study_card),
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
        payload={
            "merkle_root": root,
            "cases": len(cases),
            "study_card_sha256": version.study_card_sha256,
            "study_card_source": card_source,
        },
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
def dataset_grant_revoke(*, actor, grant: DatasetGrant, reason: str = "") -> DatasetGrant:
    """Withdraw a grant: no new run may start under it, and queued runs that no other grant
    covers stop before inference. Emits DATASET_GRANT_REVOKED with the steward's reason (the
    grant has no field for it: the record holds it)."""
    reason = reason.strip()
    if len(reason) > REVOKE_REASON_MAX:
        raise ApplicationError(f"The reason is longer than {REVOKE_REASON_MAX} characters.")
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
        payload={"vendor": grant.vendor.name if grant.vendor else "any", "reason": reason},
    )
    return grant
