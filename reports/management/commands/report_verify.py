"""manage.py report_verify FILE: is this PDF (or the report's DICOM object) an issued report,
and the current version?"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from reports.services import report_verify
from validation.errors import ApplicationError

EXIT_CODES = {"issued-current": 0, "superseded": 1, "altered": 2, "unknown": 3}


class Command(BaseCommand):
    help = (
        "Check a report PDF, or its DICOM Encapsulated PDF object, against the issued record: "
        "issued and current, superseded (by which version), altered, or unknown. Exit status "
        "0, 1, 2, 3 respectively."
    )

    def add_arguments(self, parser):
        parser.add_argument("pdf", type=Path)

    def handle(self, *args, pdf: Path, **options):
        try:
            data = pdf.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {pdf}: {exc.strerror}.") from exc
        try:
            result = report_verify(actor=None, data=data)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"{pdf}: {self._sentence(result)}")
        self.stdout.write(f"  file SHA-256 {result.file_sha256 or result.pdf_sha256}")
        if result.format == "dicom":
            self.stdout.write(
                f"  a DICOM object; its encapsulated PDF's SHA-256 {result.pdf_sha256}"
            )
        if result.current is not None and result.current != result.report:
            current = result.current
            self.stdout.write(
                f"  current version: {current.reference} version {current.version}, issued "
                f"{current.issued_at:%Y-%m-%d %H:%M} UTC, PDF SHA-256 {current.pdf_sha256}"
            )
        if EXIT_CODES[result.status]:
            raise SystemExit(EXIT_CODES[result.status])

    @staticmethod
    def _sentence(result) -> str:
        report = result.report
        if result.status == "issued-current":
            return (
                f"ISSUED AND CURRENT: {report.reference} version {report.version}, issued "
                f"{report.issued_at:%Y-%m-%d %H:%M} UTC; service signature verified."
            )
        if result.status == "superseded":
            newer = result.superseded_by
            return (
                f"SUPERSEDED: {report.reference} version {report.version} was replaced by "
                f"version {newer.version} on {newer.issued_at:%Y-%m-%d %H:%M} UTC."
            )
        if result.status == "altered":
            return f"ALTERED: {result.detail}."
        return "UNKNOWN: no issued report matches this file."
