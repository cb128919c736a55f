"""Partner datasets: import a version from a manifest CSV + DICOM files, seal it, grant its use.

The whole manifest is checked before anything is stored; files are then copied into the
sequestered store by content hash and the version is sealed with a Merkle root. Unreadable
files are kept as cases with their reason, never dropped.
"""

import csv
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from validation.errors import ApplicationError, PermissionDenied
from validation.merkle import merkle_root
from validation.ml.preprocess import DicomReadError, read_dicom
from validation.models import Case, Dataset, DatasetGrant, DatasetVersion, Organisation, Role
from validation.selectors import org_ids_of
from validation.storage import sequestered_put, sha256_file

REQUIRED_COLUMNS = {"case_id", "file", "label"}
ROI_COLUMNS = ("roi_x0", "roi_y0", "roi_x1", "roi_y1")
OPTIONAL_COLUMNS = {*ROI_COLUMNS, "race", "ethnicity", "site"}
MAX_ERRORS_LISTED = 50


def _require_steward(actor, partner: Organisation) -> None:
    if partner.pk not in org_ids_of(actor, Role.PARTNER_STEWARD):
        raise PermissionDenied("Only a steward of this partner may manage its datasets.")


@transaction.atomic
def dataset_create(*, actor, partner: Organisation, name: str, description: str = "") -> Dataset:
    """Register a dataset for a partner. Emits DATASET_CREATED."""
    _require_steward(actor, partner)
    if Dataset.objects.filter(partner=partner, name=name).exists():
        raise ApplicationError(f"The dataset {name!r} already exists.", status_code=409)
    dataset = Dataset.objects.create(partner=partner, name=name, description=description)
    audit_record(
        actor=actor, action=AuditAction.DATASET_CREATED, target=dataset, payload={"name": name}
    )
    return dataset


def parse_manifest(manifest_path: Path) -> list[dict]:
    """Read and check every row; raise one ApplicationError listing each problem by line."""
    root = manifest_path.parent
    try:
        handle = open(manifest_path, newline="", encoding="utf-8")
    except OSError as exc:
        raise ApplicationError(f"Cannot read the manifest: {exc.strerror}.") from exc
    with handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        missing = REQUIRED_COLUMNS - columns
        unknown = columns - REQUIRED_COLUMNS - OPTIONAL_COLUMNS
        if missing or unknown:
            problems = [f"missing column {c!r}" for c in sorted(missing)]
            problems += [f"unknown column {c!r}" for c in sorted(unknown)]
            raise ApplicationError("The manifest header is invalid.", errors=problems)
        rows, errors, seen = [], [], {}
        for line, raw in enumerate(reader, start=2):
            row, problems = _parse_row(raw, root)
            if row and row["case_id"] in seen:
                problems.append(
                    f"duplicate case_id {row['case_id']!r} (first on line {seen[row['case_id']]})"
                )
            if row:
                seen.setdefault(row["case_id"], line)
            errors += [f"line {line}: {p}" for p in problems]
            rows.append(row)
    if errors:
        shown = errors[:MAX_ERRORS_LISTED]
        more = len(errors) - len(shown)
        raise ApplicationError(
            f"The manifest has {len(errors)} problem(s); nothing was imported.",
            errors=shown + ([f"... and {more} more"] if more else []),
        )
    if not rows:
        raise ApplicationError("The manifest lists no cases.")
    return rows


def _parse_row(raw: dict, root: Path) -> tuple[dict | None, list[str]]:
    problems = []
    case_id = (raw.get("case_id") or "").strip()
    if not case_id:
        problems.append("empty case_id")
    label_text = (raw.get("label") or "").strip()
    if label_text not in {"0", "1"}:
        problems.append(f"label must be 0 or 1, got {label_text!r}")
    rel = (raw.get("file") or "").strip()
    path = (root / rel).resolve()
    if not rel or not path.is_relative_to(root.resolve()):
        problems.append(f"file {rel!r} must be a path inside the manifest's folder")
    elif not path.is_file():
        problems.append(f"file {rel!r} does not exist")
    roi = _parse_roi(raw, problems)
    if problems:
        return ({"case_id": case_id} if case_id else None), problems
    extra = {k: (raw.get(k) or "").strip() or None for k in ("race", "ethnicity", "site")}
    return {
        "case_id": case_id,
        "path": path,
        "label": int(label_text),
        "roi": roi,
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
    if not (0 <= x0 < x1 and 0 <= y0 < y1):
        problems.append(f"ROI box ({x0}, {y0}, {x1}, {y1}) is empty or negative")
        return None
    return [x0, y0, x1, y1]


def dataset_version_import(*, actor, dataset: Dataset, manifest_path: Path) -> DatasetVersion:
    """Import and seal a new version of `dataset` from a manifest CSV beside its DICOM files.
    Checks the whole manifest first (nothing stored on error), copies files into the
    sequestered store, records unreadable files with their reason, and seals with a Merkle
    root. Emits DATASET_VERSION_IMPORTED and DATASET_VERSION_SEALED."""
    _require_steward(actor, dataset.partner)
    rows = parse_manifest(Path(manifest_path))
    cases = []
    for row in rows:
        file_sha = sha256_file(row["path"])
        try:
            attributes, read_error = read_dicom(row["path"]).attributes, ""
        except DicomReadError as exc:
            attributes, read_error = {}, exc.reason
        attributes.update({k: v for k, v in row["extra"].items() if v is not None})
        relative = f"dicom/{file_sha[:2]}/{file_sha}.dcm"
        sequestered_put(relative, row["path"])
        cases.append(
            Case(
                case_id=row["case_id"],
                file_path=relative,
                file_sha256=file_sha,
                label=row["label"],
                roi=row["roi"],
                attributes=attributes,
                read_error=read_error,
            )
        )
    return _version_store(actor=actor, dataset=dataset, cases=cases)


@transaction.atomic
def _version_store(*, actor, dataset: Dataset, cases: list[Case]) -> DatasetVersion:
    Dataset.objects.select_for_update().get(pk=dataset.pk)
    number = (
        dataset.versions.order_by("-version").values_list("version", flat=True).first() or 0
    ) + 1
    modalities = sorted({c.attributes.get("modality") for c in cases} - {None})
    version = DatasetVersion.objects.create(
        dataset=dataset, version=number, created_by=actor, modality="/".join(modalities)
    )
    for case in cases:
        case.dataset_version = version
    Case.objects.bulk_create(cases, batch_size=500)
    unreadable = sum(1 for c in cases if c.read_error)
    audit_record(
        actor=actor,
        action=AuditAction.DATASET_VERSION_IMPORTED,
        target=version,
        payload={"cases": len(cases), "unreadable": unreadable},
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


@transaction.atomic
def dataset_grant(
    *,
    actor,
    dataset_version: DatasetVersion,
    vendor: Organisation | None,
    allow_exemplars: bool = False,
) -> DatasetGrant:
    """The partner allows a vendor (None: any vendor) to be validated on this version.
    Emits DATASET_GRANTED."""
    _require_steward(actor, dataset_version.dataset.partner)
    if vendor is not None and vendor.kind != Organisation.Kind.VENDOR:
        raise ApplicationError("Grants are given to vendor organisations.")
    grant = DatasetGrant.objects.create(
        dataset_version=dataset_version,
        vendor=vendor,
        allow_exemplars=allow_exemplars,
        granted_by=actor,
    )
    audit_record(
        actor=actor,
        action=AuditAction.DATASET_GRANTED,
        target=grant,
        payload={"vendor": vendor.name if vendor else "any", "allow_exemplars": allow_exemplars},
    )
    return grant
