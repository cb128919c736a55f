"""Vendor, partner and team API. Views parse, call a service or selector, and shape output."""

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from validation import selectors
from validation.api.listing import QueryFilter
from validation.api.schema import RunResultsSerializer, problems
from validation.api.serializers import (
    PackageReviewSerializer,
    PackageSerializer,
    PackageTeamSerializer,
    PackageUploadSerializer,
    RunSerializer,
    RunStartSerializer,
    RunTeamSerializer,
    aggregate_results,
)
from validation.errors import ApplicationError
from validation.models import PackageStatus, RunStatus
from validation.packaging import MANIFEST_SCHEMA, SCHEMA_VERSION
from validation.protocol_document import PROTOCOL_SCHEMA
from validation.services.packages import package_review, package_submit
from validation.services.runs import run_cancel, run_start


@extend_schema_view(
    list=extend_schema(
        description="The model packages you may see, newest first: a vendor's own, or all of "
        "them for the validation team and auditors."
    ),
    retrieve=extend_schema(
        description="One package: its manifest, status, smoke-test timings and, when refused, "
        "why. The validation team also reads the smoke test's details."
    ),
)
class PackageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    query_filters = (
        QueryFilter("status", "status", "Only packages in this status.", PackageStatus.values),
    )

    def get_serializer_class(self):
        return (
            PackageTeamSerializer
            if selectors.is_validation_team(self.request.user)
            else PackageSerializer
        )

    def get_queryset(self):
        return selectors.packages_visible_to(self.request.user)

    def get_object(self):
        return selectors.package_get_visible(user=self.request.user, pk=self.kwargs["pk"])

    @extend_schema(
        request={"multipart/form-data": PackageUploadSerializer}, responses={202: PackageSerializer}
    )
    @problems(409, 413, 503)
    def create(self, request):
        """Upload a model package (a .tar or .tar.gz built with `blindspot build`, vendors only).

        Accepted for testing (202, status `testing`): the smoke test runs on a worker; poll the
        package for `submitted` or `refused` (with `refusal_category` and `refusal_reasons`)."""
        self.parser_classes = [MultiPartParser]
        upload = PackageUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        package = package_submit(actor=request.user, upload=upload.validated_data["file"])
        return Response(PackageSerializer(package).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=PackageReviewSerializer, responses=PackageTeamSerializer)
    @problems(409)
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        """Approve or reject a submitted package for validation (validation team)."""
        body = PackageReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        package = package_review(
            actor=request.user, package=self.get_object(), **body.validated_data
        )
        return Response(self.get_serializer_class()(package).data)


@extend_schema_view(
    list=extend_schema(
        description="The validation runs you may see, newest first: a vendor's on its packages, "
        "a partner's on its data, all of them for the validation team and auditors."
    ),
    retrieve=extend_schema(
        description="One run: its status, progress (cases done of total), the package, "
        "dataset version and protocol it binds, and its stage times."
    ),
)
class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    query_filters = (
        QueryFilter("status", "status", "Only runs in this status.", RunStatus.values),
        QueryFilter("package", "package_id", "Only runs of this package (id).", integer=True),
    )

    def get_queryset(self):
        return selectors.runs_visible_to(self.request.user)

    def get_serializer_class(self):
        return (
            RunTeamSerializer if selectors.is_validation_team(self.request.user) else RunSerializer
        )

    def get_object(self):
        return selectors.run_get_visible(user=self.request.user, pk=self.kwargs["pk"])

    @extend_schema(request=RunStartSerializer, responses={201: RunTeamSerializer})
    @problems(404, 409)
    def create(self, request):
        """Start a blind validation of an approved package on a granted, sealed dataset version
        under a protocol (validation team). Locks the protocol on first use; answers 201 with
        the run `queued`."""
        body = RunStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ids = body.validated_data
        user = request.user
        # Each id through the user's scope, so a hidden one answers like a missing one.
        run = run_start(
            actor=user,
            package=selectors.package_get_visible(user=user, pk=ids["package"]),
            dataset_version=selectors.dataset_version_get_visible(
                user=user, pk=ids["dataset_version"]
            ),
            protocol=selectors.protocol_get_visible(user=user, pk=ids["protocol"]),
        )
        run.refresh_from_db()
        return Response(RunTeamSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=RunResultsSerializer)
    @problems(409)
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        """A run's aggregate results once it is scored (409 before): primary metrics with
        intervals, subgroups, bootstrap, calibration, fairness, failures and the acceptance
        verdict. Vendors and partners read small cells suppressed and numbers rounded."""
        run = self.get_object()
        sections = selectors.run_results(run)
        if not sections:
            raise ApplicationError("Results are not available yet.", status_code=409)
        audience = selectors.run_audience(user=request.user, run=run)
        min_cell = int(run.protocol.document["min_cell_size"])
        return Response(aggregate_results(sections, audience=audience, min_cell=min_cell))

    @extend_schema(request=None, responses=RunTeamSerializer)
    @problems(409)
    @action(detail=True, methods=["post"])
    @transaction.non_atomic_requests
    def cancel(self, request, pk=None):
        """Cancel a run that has not finished (validation team); its shards stop at their next
        batch. No request body."""
        run = run_cancel(actor=request.user, run=self.get_object())
        return Response(RunTeamSerializer(run).data)


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
@permission_classes([AllowAny])
def manifest_schema(request, version: str):
    """The JSON Schema a package's manifest.json must satisfy (public: vendors build to it)."""
    if version != SCHEMA_VERSION:
        raise ApplicationError(
            f"No manifest schema version {version!r}; current is {SCHEMA_VERSION}.", status_code=404
        )
    return Response({"$id": request.build_absolute_uri(), **MANIFEST_SCHEMA})


@extend_schema(responses={200: OpenApiTypes.OBJECT})
@api_view(["GET"])
@permission_classes([AllowAny])
def protocol_schema(request):
    """The JSON Schema of a protocol document (the pre-registered analysis plan)."""
    return Response({"$id": request.build_absolute_uri(), **PROTOCOL_SCHEMA})
