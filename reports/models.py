"""Validation reports and their Part 11 signatures.

A report is drafted from a run, signed by the people the protocol names, then issued: from that
moment its document, hashes and PDF are frozen (model, queryset, admin and database trigger). A
correction is a new version whose `supersedes` points at the old one; both remain.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from audit.immutability import AppendOnlyModel, ImmutableRecordError


class ReportQuerySet(models.QuerySet):
    def update(self, **kwargs):
        if self.filter(issued_at__isnull=False).exists():
            raise ImmutableRecordError("Issued reports cannot change.")
        return super().update(**kwargs)

    def delete(self):
        raise ImmutableRecordError("Reports are never deleted.")


class Report(models.Model):
    class Status(models.TextChoices):
        AWAITING_SIGNATURE = "awaiting-signature"
        ISSUING = "issuing"  # every signature given; the issue task renders and freezes it
        ISSUED = "issued"

    run = models.ForeignKey(
        "validation.ValidationRun", on_delete=models.PROTECT, related_name="reports"
    )
    # Set on a comparison report (issue 18): `run` is then the comparison's candidate run, so
    # the scoping, listing and signing paths that read `report.run` keep working; its versions
    # count per comparison, not per run.
    comparison = models.ForeignKey(
        "validation.ComparisonRun",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reports",
    )
    version = models.PositiveIntegerField(default=1)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    status = models.CharField(
        max_length=24, choices=Status.choices, default=Status.AWAITING_SIGNATURE
    )
    # The content every signer signs: the canonical document without signatures/integrity.
    document = models.JSONField()
    content_sha256 = models.CharField(max_length=64)
    # Filled at issue: the final document (with signatures), its PDF and the service signature.
    issued_document_sha256 = models.CharField(max_length=64, blank=True)
    pdf_path = models.CharField(max_length=500, blank=True)  # relative to MEDIA_ROOT
    pdf_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    service_signature = models.TextField(blank=True)
    required_signatures = models.JSONField(default=list)  # e.g. ["reviewed", "approved"]
    created_at = models.DateTimeField(auto_now_add=True)
    issued_at = models.DateTimeField(null=True, blank=True)

    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "version"],
                condition=Q(comparison__isnull=True),
                name="report_version_once",
            ),
            models.UniqueConstraint(
                fields=["comparison", "version"],
                condition=Q(comparison__isnull=False),
                name="comparison_report_version_once",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["awaiting-signature", "issuing"], issued_at__isnull=True)
                | (
                    Q(status="issued", issued_at__isnull=False)
                    & ~Q(pdf_sha256="")
                    & ~Q(service_signature="")
                ),
                name="report_issue_complete",
            ),
        ]

    @property
    def reference(self) -> str:
        if self.comparison_id is not None:
            return f"C-{self.comparison_id:06d}"
        return f"R-{self.run_id:06d}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            stored = type(self).objects.filter(pk=self.pk).values_list("issued_at", flat=True)
            if stored.first() is not None:
                raise ImmutableRecordError("An issued report cannot change; issue a new version.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableRecordError("Reports are never deleted.")

    def __str__(self) -> str:
        return f"{self.reference} v{self.version}"


class Signature(AppendOnlyModel):
    """A 21 CFR Part 11 electronic signature: printed name, time and meaning, bound to the
    content hash the signer saw."""

    class Meaning(models.TextChoices):
        REVIEWED = "reviewed"
        APPROVED = "approved"

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="signatures")
    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    printed_name = models.CharField(max_length=200)
    role = models.CharField(max_length=32)
    meaning = models.CharField(max_length=16, choices=Meaning.choices)
    content_sha256 = models.CharField(max_length=64)
    signed_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["report", "meaning"], name="signature_meaning_once"),
            models.UniqueConstraint(fields=["report", "signer"], name="signature_signer_once"),
        ]
