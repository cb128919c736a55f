"""The audit trail: append-only, hash-chained events written in the transaction they record."""

from django.conf import settings
from django.db import models

from audit.immutability import AppendOnlyModel

GENESIS_HASH = "0" * 64


class AuditAction(models.TextChoices):
    ORGANISATION_CREATED = "organisation.created"
    MEMBERSHIP_GRANTED = "membership.granted"
    PACKAGE_SUBMITTED = "package.submitted"
    PACKAGE_REJECTED_AT_INTAKE = "package.rejected_at_intake"
    PACKAGE_APPROVED = "package.approved"
    PACKAGE_REJECTED = "package.rejected"
    DATASET_CREATED = "dataset.created"
    DATASET_VERSION_IMPORTED = "dataset_version.imported"
    DATASET_IMPORT_REFUSED = "dataset_version.import_refused"
    DATASET_VERSION_SEALED = "dataset_version.sealed"
    DATASET_GRANTED = "dataset.granted"
    DATASET_GRANT_REVOKED = "dataset.grant_revoked"
    DATASET_USED = "dataset.used"
    DATASET_STUDY_CARD_DRAFTED = "dataset.study_card_drafted"
    PROTOCOL_CREATED = "protocol.created"
    PROTOCOL_LOCKED = "protocol.locked"
    RUN_QUEUED = "run.queued"
    RUN_STARTED = "run.started"
    RUN_INFERENCE_DONE = "run.inference_done"
    RUN_SCORED = "run.scored"
    RUN_EXPLAINED = "run.explained"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    COMPARISON_STARTED = "comparison.started"
    COMPARISON_SCORED = "comparison.scored"
    COMPARISON_FAILED = "comparison.failed"
    CASE_DATA_VIEWED = "case_data.viewed"
    REPORT_DRAFTED = "report.drafted"
    REPORT_SIGNED = "report.signed"
    REPORT_SIGNATURE_REFUSED = "report.signature_refused"
    REPORT_ISSUED = "report.issued"
    REPORT_DOWNLOADED = "report.downloaded"
    REPORT_CORRECTION_DRAFTED = "report.correction_drafted"
    REPORT_VERIFIED = "report.verified"
    REQUEST_REFUSED = "request.refused"
    ACCOUNT_SIGNED_IN = "account.signed_in"
    ACCOUNT_SIGN_IN_FAILED = "account.sign_in_failed"
    ACCOUNT_LOCKED_OUT = "account.locked_out"
    ACCOUNT_SIGNED_OUT = "account.signed_out"
    ACCOUNT_SESSION_EXPIRED = "account.session_expired"
    ACCOUNT_PASSWORD_CHANGED = "account.password_changed"  # noqa: S105 (an action name)
    ACCOUNT_SECOND_FACTOR_ADDED = "account.second_factor_added"
    ORGANISATION_SECOND_FACTOR_REQUIRED = "organisation.second_factor_required"
    API_TOKEN_CREATED = "api_token.created"  # noqa: S105 (an action name)
    API_TOKEN_REVOKED = "api_token.revoked"  # noqa: S105 (an action name)


class AuditEvent(AppendOnlyModel):
    """One link of the chain. `hash` covers every other field and `prev_hash`; `prev_hash` is
    unique, so two writers racing for the same predecessor cannot fork the chain."""

    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=64, choices=AuditAction.choices)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(default=dict)
    payload_sha256 = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64, unique=True)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.target_type}:{self.target_id}"
