"""Partner and vendor API for datasets: partners create datasets, import versions from archives,
grant and revoke their use and read the usage log; vendors read dataset cards only."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from validation import selectors
from validation.models import Dataset, DatasetGrant, DatasetImport
from validation.services.dataset_imports import dataset_import_request
from validation.services.datasets import (
    REVOKE_REASON_MAX,
    dataset_create,
    dataset_grant,
    dataset_grant_revoke,
)

# --- shapes -------------------------------------------------------------------------------------


class DatasetSerializer(serializers.ModelSerializer):
    partner = serializers.CharField(source="partner.name")
    versions = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            "id",
            "partner",
            "name",
            "description",
            "identity_policy",
            "card_min_cell",
            "created_at",
            "versions",
        ]

    def get_versions(self, dataset: Dataset) -> list[dict]:
        return selectors.dataset_versions_summary(dataset)


class DatasetCreateSerializer(serializers.Serializer):
    partner = serializers.IntegerField()
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    identity_policy = serializers.ChoiceField(
        choices=Dataset.IdentityPolicy.values, default=Dataset.IdentityPolicy.DEIDENTIFY
    )
    card_min_cell = serializers.IntegerField(required=False, default=5)


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="a zip, tar or tar.gz holding manifest.csv and files")


class DatasetImportSerializer(serializers.ModelSerializer):
    dataset = serializers.IntegerField(source="dataset_id")
    version = serializers.IntegerField(source="version_id", allow_null=True)

    class Meta:
        model = DatasetImport
        fields = [
            "id",
            "dataset",
            "source_name",
            "status",
            "files_done",
            "files_total",
            "message",
            "errors",
            "version",
            "created_at",
            "finished_at",
        ]


class GrantSerializer(serializers.ModelSerializer):
    vendor = serializers.CharField(source="vendor.name", allow_null=True, default=None)
    protocol = serializers.SerializerMethodField()
    dataset_version = serializers.IntegerField(source="dataset_version_id")
    runs_used = serializers.SerializerMethodField()

    class Meta:
        model = DatasetGrant
        fields = [
            "id",
            "dataset_version",
            "vendor",
            "protocol",
            "allow_exemplars",
            "max_runs",
            "runs_used",
            "granted_at",
            "revoked_at",
        ]

    def get_protocol(self, grant: DatasetGrant) -> str | None:
        return str(grant.protocol) if grant.protocol else None

    def get_runs_used(self, grant: DatasetGrant) -> int | None:
        if grant.vendor is None:
            return None
        return selectors.runs_used(dataset_version=grant.dataset_version, vendor=grant.vendor)


class GrantCreateSerializer(serializers.Serializer):
    dataset_version = serializers.IntegerField()
    vendor = serializers.IntegerField(required=False, allow_null=True, default=None)
    protocol = serializers.IntegerField(required=False, allow_null=True, default=None)
    allow_exemplars = serializers.BooleanField(default=False)
    max_runs = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)


class GrantRevokeSerializer(serializers.Serializer):
    reason = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=REVOKE_REASON_MAX
    )


def usage_row(run) -> dict:
    return {
        "run": run.pk,
        "dataset_version": run.dataset_version.version,
        "requested_by": run.requested_by.get_username(),
        "vendor": run.package.vendor.name,
        "package": f"{run.package.name} {run.package.version}",
        "package_sha256": run.package.sha256,
        "protocol": str(run.protocol),
        "queued_at": run.queued_at,
        "finished_at": run.finished_at,
        "status": run.status,
    }


# --- views --------------------------------------------------------------------------------------


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A partner's datasets (the validation team sees all). Vendors: see /dataset-cards/."""

    serializer_class = DatasetSerializer

    def get_queryset(self):
        return selectors.datasets_visible_to(self.request.user)

    def get_object(self):
        return selectors.dataset_get_visible(user=self.request.user, pk=self.kwargs["pk"])

    @extend_schema(request=DatasetCreateSerializer, responses=DatasetSerializer)
    def create(self, request):
        body = DatasetCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        partner = selectors.partner_get_visible(user=request.user, pk=data.pop("partner"))
        dataset = dataset_create(actor=request.user, partner=partner, **data)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={"multipart/form-data": ImportUploadSerializer}, responses=DatasetImportSerializer
    )
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser])
    def imports(self, request, pk=None):
        """Upload an archive; the import runs as a task (202). Poll /dataset-imports/<id>/."""
        upload = ImportUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        job = dataset_import_request(
            actor=request.user, dataset=self.get_object(), upload=upload.validated_data["file"]
        )
        job.refresh_from_db()
        return Response(DatasetImportSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        """The usage log: every run on this dataset, who asked, package, protocol, when."""
        dataset = self.get_object()
        return Response([usage_row(run) for run in selectors.dataset_usage(dataset=dataset)])


class DatasetImportViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = DatasetImportSerializer

    def get_queryset(self):
        return selectors.dataset_imports_visible_to(self.request.user)


class DatasetCardViewSet(viewsets.ViewSet):
    """What a vendor may know of a granted dataset version; partners and the team see the same
    card for their versions."""

    @extend_schema(operation_id="dataset_cards_list", responses={200: dict})
    def list(self, request):
        versions = selectors.dataset_cards_visible_to(request.user).order_by("pk")
        return Response([selectors.dataset_card(v) for v in versions])

    @extend_schema(
        operation_id="dataset_cards_retrieve",
        parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH)],
        responses={200: dict},
    )
    def retrieve(self, request, pk=None):
        version = selectors.dataset_card_get_visible(user=request.user, pk=pk)
        return Response(selectors.dataset_card(version))


class GrantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = GrantSerializer

    def get_queryset(self):
        return selectors.grants_visible_to(self.request.user)

    def get_object(self):
        return selectors.grant_get_visible(user=self.request.user, pk=self.kwargs["pk"])

    @extend_schema(request=GrantCreateSerializer, responses=GrantSerializer)
    def create(self, request):
        body = GrantCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        version = selectors.dataset_version_get_visible(
            user=request.user, pk=data["dataset_version"]
        )
        vendor, protocol = data["vendor"], data["protocol"]
        if vendor is not None:
            vendor = selectors.vendor_get_visible(user=request.user, pk=vendor)
        if protocol is not None:
            protocol = selectors.protocol_get_visible(user=request.user, pk=protocol)
        grant = dataset_grant(
            actor=request.user,
            dataset_version=version,
            vendor=vendor,
            protocol=protocol,
            allow_exemplars=data["allow_exemplars"],
            max_runs=data["max_runs"],
        )
        return Response(GrantSerializer(grant).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=GrantRevokeSerializer, responses=GrantSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        body = GrantRevokeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        grant = dataset_grant_revoke(
            actor=request.user, grant=self.get_object(), reason=body.validated_data["reason"]
        )
        return Response(GrantSerializer(grant).data)
