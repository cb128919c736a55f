"""Partner and vendor API for datasets: partners create datasets, import versions from archives,
grant and revoke their use and read the usage log; vendors read dataset cards only."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from validation import selectors
from validation.api.listing import QueryFilter
from validation.api.schema import DatasetCardSerializer, problems
from validation.models import Dataset, DatasetGrant, DatasetImport
from validation.services.dataset_imports import dataset_import_request
from validation.services.datasets import (
    REVOKE_REASON_MAX,
    dataset_create,
    dataset_grant,
    dataset_grant_revoke,
    study_card_from_upload,
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
    study_card = serializers.FileField(
        required=False,
        help_text="optional: the version's study card, a JSON file (see docs/API.md); else a "
        "study_card.json beside the manifest, else the dataset's draft card",
    )


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


class UsageRowSerializer(serializers.Serializer):
    """One use of a dataset: a run on one of its versions."""

    run = serializers.IntegerField()
    dataset_version = serializers.IntegerField()
    requested_by = serializers.CharField()
    vendor = serializers.CharField()
    package = serializers.CharField()
    package_sha256 = serializers.CharField()
    protocol = serializers.CharField()
    queued_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField()


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


@extend_schema_view(
    list=extend_schema(
        description="A partner's datasets with their versions, newest first (the validation "
        "team sees all). Vendors read /dataset-cards/ instead."
    ),
    retrieve=extend_schema(description="One dataset with its versions and their case counts."),
)
class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """A partner's datasets (the validation team sees all). Vendors: see /dataset-cards/."""

    serializer_class = DatasetSerializer

    def get_queryset(self):
        return selectors.datasets_visible_to(self.request.user)

    def get_object(self):
        return selectors.dataset_get_visible(user=self.request.user, pk=self.kwargs["pk"])

    @extend_schema(request=DatasetCreateSerializer, responses={201: DatasetSerializer})
    @problems(404, 409)
    def create(self, request):
        """Create a dataset for your partner organisation (partner stewards); versions are
        imported into it."""
        body = DatasetCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        partner = selectors.partner_get_visible(user=request.user, pk=data.pop("partner"))
        dataset = dataset_create(actor=request.user, partner=partner, **data)
        return Response(DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={"multipart/form-data": ImportUploadSerializer},
        responses={202: DatasetImportSerializer},
    )
    @problems(409, 413)
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser])
    def imports(self, request, pk=None):
        """Import a new dataset version from an archive (zip, tar or tar.gz holding manifest.csv
        and the DICOM files; partner stewards), with an optional study card (a JSON file, or
        study_card.json beside the manifest), frozen with the seal. The import runs as a task:
        202, then poll /dataset-imports/{id}/."""
        upload = ImportUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        dataset = self.get_object()
        card = upload.validated_data.get("study_card")
        job = dataset_import_request(
            actor=request.user,
            dataset=dataset,
            upload=upload.validated_data["file"],
            study_card=None if card is None else study_card_from_upload(card),
        )
        job.refresh_from_db()
        return Response(DatasetImportSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=UsageRowSerializer(many=True))
    @action(detail=True, methods=["get"])
    def usage(self, request, pk=None):
        """The usage log: every run on this dataset, who asked, package, protocol, when."""
        dataset = self.get_object()
        runs = self.filter_queryset(selectors.dataset_usage(dataset=dataset))
        page = self.paginate_queryset(runs)
        return self.get_paginated_response([usage_row(run) for run in page or []])


@extend_schema_view(
    list=extend_schema(
        description="Your dataset imports, newest first: status, files done of total, and the "
        "problems found."
    ),
    retrieve=extend_schema(
        description="One import: poll it after uploading until it is `done` (with the new "
        "`version`) or `failed` (with its `errors`)."
    ),
)
class DatasetImportViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = DatasetImportSerializer
    query_filters = (
        QueryFilter("dataset", "dataset_id", "Only imports into this dataset (id).", integer=True),
    )

    def get_queryset(self):
        return selectors.dataset_imports_visible_to(self.request.user)


class DatasetCardViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """What a vendor may know of a granted dataset version; partners and the team see the same
    card for their versions."""

    serializer_class = DatasetCardSerializer

    def get_queryset(self):
        return selectors.dataset_cards_visible_to(self.request.user)

    def list(self, request):
        """The cards of the dataset versions you may use or own, newest first: size, modality,
        sites and demographic distributions, small cells suppressed. Never case level."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response([selectors.dataset_card(v) for v in page or []])

    def retrieve(self, request, pk=None):
        """One dataset version's card (the id is the dataset version's)."""
        version = selectors.dataset_card_get_visible(user=request.user, pk=pk)
        return Response(selectors.dataset_card(version))


@extend_schema_view(
    list=extend_schema(
        description="Grants of dataset use you may see, newest first: a partner's own, those "
        "naming your vendor organisation, or all for the validation team."
    ),
    retrieve=extend_schema(description="One grant: whom, which protocol, run cap and use."),
)
class GrantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = GrantSerializer
    query_filters = (
        QueryFilter(
            "dataset_version", "dataset_version_id", "Only grants on this version.", integer=True
        ),
    )

    def get_queryset(self):
        return selectors.grants_visible_to(self.request.user)

    def get_object(self):
        return selectors.grant_get_visible(user=self.request.user, pk=self.kwargs["pk"])

    @extend_schema(request=GrantCreateSerializer, responses={201: GrantSerializer})
    @problems(404)
    def create(self, request):
        """Grant the use of a sealed dataset version you steward: to one vendor or any, under
        one protocol or any, with an optional run cap (partner stewards)."""
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
    @problems(409)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """Revoke a grant (partner stewards): no new run may start under it, and queued runs
        that no other grant covers stop before inference."""
        body = GrantRevokeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        grant = dataset_grant_revoke(
            actor=request.user, grant=self.get_object(), reason=body.validated_data["reason"]
        )
        return Response(GrantSerializer(grant).data)
