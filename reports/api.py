"""Report downloads, the public key, and report status."""

from django.http import FileResponse, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from reports.models import Report
from reports.selectors import report_get_visible, report_is_current, reports_visible_to
from reports.services import (
    MAX_VERIFY_BYTES,
    report_correct,
    report_dicom_download,
    report_download,
    report_sign,
    report_verify,
    signatures_missing,
)
from reports.signing import public_key_fingerprint, public_key_pem
from validation.api.listing import QueryFilter
from validation.api.schema import problems
from validation.errors import ApplicationError


class ReportSerializer(serializers.ModelSerializer):
    reference = serializers.CharField()
    comparison: serializers.PrimaryKeyRelatedField = serializers.PrimaryKeyRelatedField(
        read_only=True,
        allow_null=True,
        help_text="Set on a comparison report (reference C-...): the comparison run it reports; "
        "`run` is then the comparison's candidate run.",
    )
    current = serializers.SerializerMethodField()
    signatures = serializers.SerializerMethodField()
    missing_signatures = serializers.SerializerMethodField(
        help_text="Required signatures not yet given, in the order they must be given "
        "(the reviewer's review before the QA approval)."
    )

    class Meta:
        model = Report
        fields = [
            "id",
            "reference",
            "version",
            "run",
            "comparison",
            "status",
            "content_sha256",
            "issued_document_sha256",
            "pdf_sha256",
            "issued_at",
            "current",
            "signatures",
            "missing_signatures",
        ]

    def get_current(self, report) -> bool:
        return report.issued_at is not None and report_is_current(report)

    def get_signatures(self, report) -> list[dict]:
        return [
            {"name": s.printed_name, "role": s.role, "meaning": s.meaning, "signed_at": s.signed_at}
            for s in report.signatures.all()
        ]

    def get_missing_signatures(self, report) -> list[str]:
        given = {s.meaning for s in report.signatures.all()}
        return signatures_missing(report.required_signatures, given)


class SignSerializer(serializers.Serializer):
    password = serializers.CharField(trim_whitespace=False)
    meaning = serializers.ChoiceField(choices=["reviewed", "approved"])


class CorrectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class VerifySerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="The report's PDF, or its DICOM Encapsulated PDF object (.dcm), to check."
    )


class ReportReferenceSerializer(serializers.Serializer):
    reference = serializers.CharField()
    version = serializers.IntegerField()
    issued_at = serializers.DateTimeField(allow_null=True)
    document_sha256 = serializers.CharField()
    pdf_sha256 = serializers.CharField()


class VerifyResultSerializer(serializers.Serializer):
    """What a PDF or DICOM object is: `issued-current`, `superseded`, `altered` or `unknown`.
    The reports it names are shown only to those who may see them (null otherwise)."""

    status = serializers.ChoiceField(choices=["issued-current", "superseded", "altered", "unknown"])
    format = serializers.ChoiceField(
        choices=["pdf", "dicom"], help_text="What the file was: a PDF or a DICOM object."
    )
    file_sha256 = serializers.CharField(help_text="The SHA-256 of the file as uploaded.")
    pdf_sha256 = serializers.CharField(
        help_text="The SHA-256 of the PDF (for a DICOM object, of the PDF it encapsulates)."
    )
    report = ReportReferenceSerializer(allow_null=True)
    superseded_by = ReportReferenceSerializer(allow_null=True)
    current = ReportReferenceSerializer(allow_null=True)
    detail = serializers.CharField(allow_blank=True)


@extend_schema_view(
    list=extend_schema(
        description="The reports you may see, newest first: vendors and partners see issued "
        "reports of their runs; the validation team and auditors see all."
    ),
    retrieve=extend_schema(
        description="One report: its version, status, hashes, signatures given and missing."
    ),
)
class ReportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ReportSerializer
    query_filters = (QueryFilter("run", "run_id", "Only reports of this run (id).", integer=True),)

    def get_queryset(self):
        return reports_visible_to(self.request.user)

    def get_object(self):
        return report_get_visible(user=self.request.user, pk=self.kwargs["pk"])

    @extend_schema(
        responses={
            (200, "application/pdf"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The signed report's PDF."
            )
        }
    )
    @problems(409)
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        """Download an issued report's PDF (audited). Check it with /reports/verify/ or
        `blindspot report verify`."""
        report = self.get_object()
        path = report_download(actor=request.user, report=report)
        return FileResponse(
            open(path, "rb"),
            as_attachment=True,
            filename=f"{report.reference}-v{report.version}.pdf",
            content_type="application/pdf",
        )

    @extend_schema(
        responses={
            (200, "application/dicom"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The signed report as a DICOM Encapsulated PDF object "
                "(SOP class 1.2.840.10008.5.1.4.1.1.104.1).",
            )
        }
    )
    @problems(409)
    @action(detail=True, methods=["get"])
    def dicom(self, request, pk=None):
        """Download an issued report as a DICOM Encapsulated PDF object, PACS-ready (audited
        like the PDF): the PDF's exact bytes, the report's identifiers and no patient. The same
        report always gives the same bytes; /reports/verify/ checks it."""
        report = self.get_object()
        data = report_dicom_download(actor=request.user, report=report)
        response = HttpResponse(data, content_type="application/dicom")
        filename = f"{report.reference}-v{report.version}.dcm"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    @extend_schema(
        request=SignSerializer,
        responses={200: ReportSerializer, 202: ReportSerializer},
    )
    @problems(409)
    @action(detail=True, methods=["post"], serializer_class=SignSerializer)
    def sign(self, request, pk=None):
        """Sign a report with your password (21 CFR Part 11): `reviewed` by a reviewer,
        `approved` by a distinct QA approver. The last required signature answers 202: the
        report is `issuing` until it is rendered and frozen (poll it)."""
        body = SignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        report = self.get_object()
        report_sign(actor=request.user, report=report, **body.validated_data)
        report.refresh_from_db()
        # The last signature answers at once: the report is `issuing` until its task has
        # rendered and frozen it (poll the report).
        issuing = report.status == Report.Status.ISSUING
        return Response(
            ReportSerializer(report).data,
            status=status.HTTP_202_ACCEPTED if issuing else status.HTTP_200_OK,
        )

    @extend_schema(request=CorrectSerializer, responses={201: ReportSerializer})
    @problems(409)
    @action(detail=True, methods=["post"], serializer_class=CorrectSerializer)
    def correct(self, request, pk=None):
        """Draft a new version that supersedes this issued one (validation team)."""
        body = CorrectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        correction = report_correct(
            actor=request.user, report=self.get_object(), reason=body.validated_data["reason"]
        )
        return Response(ReportSerializer(correction).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={"multipart/form-data": VerifySerializer}, responses=VerifyResultSerializer
    )
    @problems(413)
    @action(
        detail=False,
        methods=["post"],
        serializer_class=VerifySerializer,
        parser_classes=[MultiPartParser],
    )
    def verify(self, request):
        """Is this PDF (or the report's DICOM object) an issued report, the current version,
        superseded, altered or unknown? Any signed-in user may ask. The report's identity,
        versions and hashes are named only to those who may see that report; anyone else gets
        the answer alone. A DICOM object other than an Encapsulated PDF is refused (400)."""
        body = VerifySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = body.validated_data["file"]
        if upload.size > MAX_VERIFY_BYTES:
            raise ApplicationError("The file is larger than any report the service issues.")
        result = report_verify(actor=request.user, data=upload.read())
        answer = result.as_dict()
        hidden = (
            result.report is not None
            and not reports_visible_to(request.user).filter(pk=result.report.pk).exists()
        )
        if hidden:
            answer.update(report=None, superseded_by=None, current=None, detail="")
        return Response(answer)


class SigningKeySerializer(serializers.Serializer):
    algorithm = serializers.CharField()
    public_key_pem = serializers.CharField()
    fingerprint = serializers.CharField()


@extend_schema(responses=SigningKeySerializer)
@api_view(["GET"])
@permission_classes([AllowAny])
def signing_key(request):
    """The service's Ed25519 public key: anyone holding a report can check its signature."""
    return Response(
        {
            "algorithm": "Ed25519",
            "public_key_pem": public_key_pem(),
            "fingerprint": public_key_fingerprint(),
        }
    )
