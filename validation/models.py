"""The validation domain: who is who, packages, datasets, protocols, runs and their results.

Rows that the regulation freezes (sealed dataset versions, locked protocols) guard themselves in
`save()`; everything else about what may happen lives in services.
"""

import secrets

from blindspot_client.package.limits import PACKAGE_NAME_MAX_LENGTH, PACKAGE_VERSION_MAX_LENGTH
from django.conf import settings
from django.db import models
from django.db.models import Q

from audit.immutability import FreezableModel


class OrganisationKind(models.TextChoices):
    VENDOR = "vendor"
    PARTNER = "partner"
    VALIDATOR = "validator"


class PackageStatus(models.TextChoices):
    TESTING = "testing"  # passed the cheap checks; the smoke test runs on a worker
    REFUSED = "refused"  # failed the smoke test (reasons on the row); blocks no resubmission
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SCORING = "scoring"
    EXPLAINING = "explaining"
    REPORTING = "reporting"
    AWAITING_SIGNATURE = "awaiting-signature"
    ISSUED = "issued"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Failures the service caused (our bug, no sandbox on the worker, the partner's withdrawal): a
# run that ends so does not count against the vendor's run caps. The model's own failures do.
SERVICE_FAILURES = frozenset({"internal-error", "no-isolation", "grant-revoked"})


class Organisation(models.Model):
    Kind = OrganisationKind

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Members must confirm a TOTP code after their password (web/, django-otp).
    require_second_factor = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=OrganisationKind.values), name="organisation_kind"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    VENDOR_MEMBER = "vendor_member"
    PARTNER_STEWARD = "partner_steward"
    REVIEWER = "reviewer"
    QA_APPROVER = "qa_approver"
    AUDITOR = "auditor"


VALIDATION_TEAM_ROLES = {Role.REVIEWER, Role.QA_APPROVER}


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=32, choices=Role.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organisation", "role"], name="membership_once"
            ),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.role} @ {self.organisation}"


class ApiToken(models.Model):
    """A named API token of one user. Only the SHA-256 of its secret is stored (the secret is shown
    once, when it is created); `prefix` lets its owner tell tokens apart."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12)
    key_sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}...)"


class ModelPackage(models.Model):
    """A vendor's packaged model, stored content-addressed. A new version is a new package."""

    Status = PackageStatus

    vendor = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="packages")
    # The manifest's schema refuses longer values at intake (one limit, one place).
    name = models.CharField(max_length=PACKAGE_NAME_MAX_LENGTH)
    version = models.CharField(max_length=PACKAGE_VERSION_MAX_LENGTH)
    # Unique per vendor, not globally: two vendors' identical bytes are two packages naming one
    # content-addressed file (issue 14: a global duplicate check told one vendor what another
    # had submitted).
    sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.BigIntegerField()
    manifest = models.JSONField()
    model_format = models.CharField(max_length=16)
    # Measured by the intake smoke test in the sandboxed runner.
    smoke_load_seconds = models.FloatField(null=True, blank=True)
    smoke_batch_seconds = models.FloatField(null=True, blank=True)
    # Deliveries of the smoke-test task that claimed the package (bounded: see package_smoke).
    smoke_attempts = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SUBMITTED)
    # Why the smoke test refused it: a category and messages safe for the vendor; the runner's
    # detail (stderr tail, traceback: host paths, environment) for the validation team only.
    refusal_category = models.CharField(max_length=32, blank=True)
    refusal_reasons = models.JSONField(default=list, blank=True)
    refusal_detail = models.TextField(blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    submitted_at = models.DateTimeField(auto_now_add=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    # The version of the same model (vendor and name) that this one succeeds, as its manifest's
    # `supersedes` named it; intake refuses a predecessor the vendor never submitted.
    supersedes = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="successors"
    )

    class Meta:
        ordering = ["-id"]
        constraints = [
            # A refused package blocks neither its bytes nor its version from a resubmission.
            models.UniqueConstraint(
                fields=["vendor", "sha256"],
                condition=~Q(status="refused"),
                name="package_sha256_once",
            ),
            models.UniqueConstraint(
                fields=["vendor", "name", "version"],
                condition=~Q(status="refused"),
                name="package_version_once",
            ),
            models.CheckConstraint(
                condition=Q(status__in=PackageStatus.values), name="package_status"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["testing", "refused", "submitted"])
                | Q(reviewed_by__isnull=False, reviewed_at__isnull=False),
                name="package_review_recorded",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


def new_uid_secret() -> str:
    return secrets.token_hex(32)


class Dataset(models.Model):
    """A partner's dataset. Its identity policy says what happens to files that carry identifying
    elements: de-identified with the PS3.15 basic profile on ingest, or rejected (listed)."""

    class IdentityPolicy(models.TextChoices):
        DEIDENTIFY = "deidentify"
        REJECT = "reject"

    partner = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    identity_policy = models.CharField(
        max_length=16, choices=IdentityPolicy.choices, default=IdentityPolicy.DEIDENTIFY
    )
    # Keys the replacement UIDs of de-identification: stable within the dataset, irreversible.
    uid_secret = models.CharField(max_length=64, default=new_uid_secret, editable=False)
    card_min_cell = models.PositiveSmallIntegerField(default=5)  # vendor cards hide smaller cells
    # The study card the partner is preparing (validation/study_card.py): the next version
    # sealed from an import that carries no card of its own takes it. None: never written.
    study_card_draft = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["partner", "name"], name="dataset_name_once")
        ]

    def __str__(self) -> str:
        return self.name


class DatasetVersion(FreezableModel):
    """A set of cases, sealed with a Merkle root over (case id, file hash, label); frozen once
    sealed."""

    FROZEN = Q(status="sealed")
    frozen_message = "A sealed dataset version cannot change."

    class Status(models.TextChoices):
        DRAFT = "draft"
        SEALED = "sealed"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    merkle_root = models.CharField(max_length=64, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    identity_policy = models.CharField(max_length=16, blank=True)  # as applied at import
    import_seconds = models.FloatField(null=True, blank=True)
    # The study card (validation/study_card.py), frozen with the seal, and its SHA-256 (in the
    # seal's audit event). None: sealed before study cards were recorded; {}: none was given.
    study_card = models.JSONField(null=True, blank=True)
    study_card_sha256 = models.CharField(max_length=64, blank=True)
    sealed_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["dataset_id", "version"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "version"], name="dataset_version_once"),
            models.CheckConstraint(
                condition=Q(status="draft") | (Q(sealed_at__isnull=False) & ~Q(merkle_root="")),
                name="dataset_version_sealed_has_root",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset} v{self.version}"


class Case(models.Model):
    """One case of a dataset version. `attributes` holds what DICOM and the manifest told us
    (sex, age, manufacturer, ...); an unreadable file is kept with its reason, never dropped."""

    dataset_version = models.ForeignKey(
        DatasetVersion, on_delete=models.PROTECT, related_name="cases"
    )
    case_id = models.CharField(max_length=128)
    # Relative to SEQUESTERED_ROOT; empty when the file was not stored (unreadable, identifying).
    # Files are stored in append-only packs: the file is file_length bytes at file_offset.
    file_path = models.CharField(max_length=500, blank=True)
    file_offset = models.BigIntegerField(null=True, blank=True)
    file_length = models.BigIntegerField(null=True, blank=True)
    file_sha256 = models.CharField(max_length=64)  # of the stored (de-identified) file
    source_sha256 = models.CharField(max_length=64, blank=True)  # of the file the partner gave
    label = models.PositiveSmallIntegerField()
    roi = models.JSONField(null=True, blank=True)  # [x0, y0, x1, y1] in pixels
    mask_path = models.CharField(max_length=500, blank=True)  # ROI mask, uint8 .npy, sequestered
    mask_sha256 = models.CharField(max_length=64, blank=True)
    attributes = models.JSONField(default=dict)
    read_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["dataset_version_id", "case_id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset_version", "case_id"], name="case_once"),
            models.CheckConstraint(condition=Q(label__in=[0, 1]), name="case_label_binary"),
        ]

    def __str__(self) -> str:
        return self.case_id


class DatasetImport(models.Model):
    """One request to import a dataset version from an uploaded archive: its progress, and either
    the sealed version or the refusal with every problem listed."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        REFUSED = "refused"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="imports")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    source_name = models.CharField(max_length=255)
    staged_path = models.CharField(max_length=500, blank=True)  # the upload, until imported
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    files_total = models.PositiveIntegerField(default=0)
    files_done = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    errors = models.JSONField(default=list)
    # The study card uploaded with the archive (checked when it was uploaded), if any.
    study_card = models.JSONField(null=True, blank=True)
    version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # When the current attempt was claimed by a worker (the rate of progress counts from here).
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The current attempt: which worker claimed it, and its last sign of life. A RUNNING import
    # whose heartbeat is older than WORKER_STALE_S lost its worker and is restarted.
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"import of {self.source_name} into {self.dataset}"


class DatasetGrant(models.Model):
    """A partner's permission to use a dataset version, for one vendor (or any) and one protocol
    (or any), with an optional cap on runs per vendor. Revoked, never deleted."""

    dataset_version = models.ForeignKey(
        DatasetVersion, on_delete=models.PROTECT, related_name="grants"
    )
    vendor = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    protocol = models.ForeignKey(
        "Protocol", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    allow_exemplars = models.BooleanField(default=False)
    max_runs = models.PositiveIntegerField(null=True, blank=True)  # per vendor; None: no cap
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    granted_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(max_runs__isnull=True) | Q(max_runs__gte=1), name="grant_cap_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset_version} for {self.vendor or 'any vendor'}"


class Protocol(FreezableModel):
    """The pre-registered analysis plan. Locked (hashed) before its first run; then frozen."""

    FROZEN = Q(locked_at__isnull=False)
    frozen_message = "A locked protocol cannot change; create a new version."

    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    document = models.JSONField()
    sha256 = models.CharField(max_length=64, blank=True)
    locked_at = models.DateTimeField(null=True, blank=True)
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="protocol_version_once"),
            models.CheckConstraint(
                condition=(Q(locked_at__isnull=True) & Q(sha256=""))
                | (Q(locked_at__isnull=False) & ~Q(sha256="")),
                name="protocol_lock_has_hash",
            ),
        ]

    @property
    def is_locked(self) -> bool:
        return self.locked_at is not None

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class ValidationRun(models.Model):
    """A package x a sealed dataset version x a locked protocol, and how far it has got."""

    Status = RunStatus

    TERMINAL = {Status.ISSUED, Status.FAILED, Status.CANCELLED}

    package = models.ForeignKey(ModelPackage, on_delete=models.PROTECT, related_name="runs")
    dataset_version = models.ForeignKey(
        DatasetVersion, on_delete=models.PROTECT, related_name="runs"
    )
    protocol = models.ForeignKey(Protocol, on_delete=models.PROTECT, related_name="runs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.QUEUED)
    cases_total = models.PositiveIntegerField(default=0)
    cases_done = models.PositiveIntegerField(default=0)
    stage_seconds = models.JSONField(default=dict)
    isolation = models.TextField(blank=True)
    sandboxed = models.BooleanField(null=True)
    # What the worker measured on itself inside the sandbox at start (ModelRunner.measured_limits).
    sandbox_limits = models.JSONField(default=dict, blank=True)
    device = models.CharField(max_length=32, blank=True)
    error_public = models.CharField(max_length=500, blank=True)  # safe for vendors
    error_detail = models.TextField(blank=True)  # reviewers only
    # Why a failed run failed (a PUBLIC_FAILURE key); SERVICE_FAILURES do not count against caps.
    failure_category = models.CharField(max_length=32, blank=True)
    # An explanation stage that failed (stage, category, limit): the report says so.
    explain_failure = models.JSONField(default=dict, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="run_status"),
            models.CheckConstraint(
                condition=Q(cases_done__lte=models.F("cases_total")), name="run_progress_bounded"
            ),
            models.CheckConstraint(
                condition=~Q(status="failed") | ~Q(error_public=""), name="run_failure_explained"
            ),
        ]

    def __str__(self) -> str:
        return f"Run {self.pk} ({self.status})"


class RunShard(models.Model):
    """A slice of a run's cases: the unit one GPU worker takes from the queue.

    `attempts` counts deliveries that claimed it (a worker lost mid-shard makes it 2);
    `worker`, `device` and `cold_start` describe the attempt that finished it; `seconds` splits
    that attempt's wall time into reading and decoding (overlapped with the model), waiting on
    the model, and writing predictions."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        STOPPED = "stopped"  # the run was cancelled or failed before this shard finished

    run = models.ForeignKey(ValidationRun, on_delete=models.PROTECT, related_name="shards")
    index = models.PositiveIntegerField()
    case_ids = models.JSONField()  # Case primary keys, in the run's case order
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    queue = models.CharField(max_length=200, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    device = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    cold_start = models.BooleanField(null=True)
    seconds = models.JSONField(default=dict)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "index"], name="shard_once"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "done", "stopped"]),
                name="shard_status",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} shard {self.index} ({self.status})"


class WorkerPresence(models.Model):
    """What a GPU worker last said about itself: the packages it holds warm (for cache-aware
    routing), its device, and a heartbeat; a worker whose heartbeat is stale is presumed dead and
    its unfinished shards are sent to the shared queue again."""

    hostname = models.CharField(max_length=200, unique=True)
    queue = models.CharField(max_length=200)  # its own queue, for shards routed to it
    device = models.CharField(max_length=32, blank=True)
    device_name = models.CharField(max_length=200, blank=True)
    warm_packages = models.JSONField(default=list)  # package SHA-256s
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.hostname} ({self.device or 'device unknown'})"


class Prediction(models.Model):
    """Case-level output. Never shown to vendors. Unique per (run, case): re-delivery is a no-op."""

    run = models.ForeignKey(ValidationRun, on_delete=models.PROTECT, related_name="predictions")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="+")
    score = models.FloatField(null=True, blank=True)
    error_category = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "case"], name="prediction_once"),
            models.CheckConstraint(
                condition=Q(score__isnull=False, error_category="")
                | Q(score__isnull=True) & ~Q(error_category=""),
                name="prediction_score_or_error",
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} case {self.case_id}"


class Explanation(models.Model):
    """A Grad-CAM map stored compactly (uint8 .npy) with its localisation agreement."""

    run = models.ForeignKey(ValidationRun, on_delete=models.PROTECT, related_name="explanations")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="+")
    cam_npy = models.BinaryField()
    pointing_hit = models.BooleanField(null=True)
    energy_in_roi = models.FloatField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "case"], name="explanation_once"),
        ]

    def __str__(self) -> str:
        return f"Grad-CAM run {self.run_id} case {self.case_id}"


class MetricResult(models.Model):
    """Aggregate results of a run, one row per section (primary, subgroups, fairness, ...)."""

    run = models.ForeignKey(ValidationRun, on_delete=models.PROTECT, related_name="metric_results")
    section = models.CharField(max_length=32)
    value = models.JSONField()
    computed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "section"], name="metric_section_once"),
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} {self.section}"


class ComparisonRun(models.Model):
    """Two validation runs compared case by case (issue 18's predetermined change control plan):
    a baseline and a candidate package of one vendor's model, on the same sealed dataset
    version under the same locked protocol, whose `comparison` block pre-registers the paired
    endpoints, hypotheses and margins. Scored once both runs are; `result` holds what
    `validation.stats.comparison.evaluate_comparison` returned, and the comparison report
    (reports.Report with this comparison) is drafted from it."""

    class Status(models.TextChoices):
        RUNNING = "running"  # one run or both still before the end of scoring
        SCORING = "scoring"  # both runs scored; the paired analysis is under way
        AWAITING_SIGNATURE = "awaiting-signature"
        ISSUED = "issued"
        FAILED = "failed"

    TERMINAL = {Status.ISSUED, Status.FAILED}

    baseline = models.OneToOneField(
        ValidationRun, on_delete=models.PROTECT, related_name="comparison_as_baseline"
    )
    candidate = models.OneToOneField(
        ValidationRun, on_delete=models.PROTECT, related_name="comparison_as_candidate"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.RUNNING)
    result = models.JSONField(default=dict, blank=True)
    error_public = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(baseline=models.F("candidate")), name="comparison_two_runs"
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=["running", "scoring", "awaiting-signature", "issued", "failed"]
                ),
                name="comparison_status",
            ),
            models.CheckConstraint(
                condition=~Q(status="failed") | ~Q(error_public=""),
                name="comparison_failure_explained",
            ),
        ]

    @property
    def reference(self) -> str:
        return f"C-{self.pk:06d}"

    def __str__(self) -> str:
        return f"Comparison {self.pk} ({self.status})"
