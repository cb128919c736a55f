"""Comparison runs over the API (issue 18 item 13): the list and one comparison for whoever
may see both of its runs, and the start for the validation team (`comparison_start`, which
audits and applies every check a run has). Vendors and partners read the paired result as the
issued comparison report shows it: rounded, small subgroups without numbers."""

from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from reports.comparison_document import lineage
from validation import selectors
from validation.api.listing import QueryFilter
from validation.api.schema import problems
from validation.api.serializers import PackageRefSerializer
from validation.errors import ApplicationError, PermissionDenied
from validation.models import ComparisonRun, ValidationRun
from validation.services.comparisons import comparison_start
from validation.stats.disclosure import comparison_disclosed


class ComparisonStartSerializer(serializers.Serializer):
    candidate_package = serializers.IntegerField(help_text="The newer package (id).")
    baseline_package = serializers.IntegerField(
        required=False,
        help_text="The package it is compared with (id): one its `supersedes` lineage reaches. "
        "Give it or `baseline_run`.",
    )
    baseline_run = serializers.IntegerField(
        required=False,
        help_text="Instead of starting the baseline again: an earlier run of it (id) on the same "
        "dataset version under the same protocol, neither failed nor cancelled.",
    )
    dataset_version = serializers.IntegerField(help_text="The sealed dataset version (id).")
    protocol = serializers.IntegerField(
        help_text="The protocol (id); it must pre-register the comparison (its `comparison` block)."
    )

    def validate(self, attrs):
        if "baseline_package" not in attrs and "baseline_run" not in attrs:
            raise serializers.ValidationError(
                {"baseline_package": ["Name the baseline package, or an earlier run of it."]}
            )
        return attrs


class ComparisonRunSideSerializer(serializers.Serializer):
    """One side of a comparison: its run's state and progress, and its package."""

    run = serializers.IntegerField(source="pk")
    status = serializers.ChoiceField(choices=ValidationRun.Status.choices)
    cases_done = serializers.IntegerField()
    cases_total = serializers.IntegerField()
    error = serializers.CharField(source="error_public")
    package = serializers.SerializerMethodField()

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "version": {"type": "string"},
                "sha256": {"type": "string"},
                "supersedes": {"type": "object", "nullable": True},
            },
        }
    )
    def get_package(self, run) -> dict:
        package = run.package
        return {
            **PackageRefSerializer(package).data,
            "supersedes": None
            if package.supersedes is None
            else PackageRefSerializer(package.supersedes).data,
        }


class ComparisonSerializer(serializers.ModelSerializer):
    """A comparison run as its audience may read it."""

    reference = serializers.CharField(help_text="C-000123: the comparison report's reference.")
    error = serializers.CharField(source="error_public")
    baseline = ComparisonRunSideSerializer()
    candidate = ComparisonRunSideSerializer()
    lineage = serializers.SerializerMethodField()
    dataset = serializers.SerializerMethodField()
    protocol = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()
    report = serializers.SerializerMethodField()

    class Meta:
        model = ComparisonRun
        fields = [
            "id",
            "reference",
            "status",
            "error",
            "baseline",
            "candidate",
            "lineage",
            "dataset",
            "protocol",
            "result",
            "report",
            "created_at",
            "scored_at",
        ]

    @extend_schema_field(
        {
            "type": "array",
            "description": "The versions from the candidate back to the baseline, newest first.",
            "items": {
                "type": "object",
                "properties": {"version": {"type": "string"}, "sha256": {"type": "string"}},
            },
        }
    )
    def get_lineage(self, comparison) -> list:
        return lineage(comparison.candidate.package, comparison.baseline.package)

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "version": {"type": "integer"},
                "merkle_root": {"type": "string"},
                "partner": {"type": "string"},
            },
        }
    )
    def get_dataset(self, comparison) -> dict:
        version = comparison.candidate.dataset_version
        return {
            "id": version.pk,
            "name": version.dataset.name,
            "version": version.version,
            "merkle_root": version.merkle_root,
            "partner": version.dataset.partner.name,
        }

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "version": {"type": "integer"},
                "sha256": {"type": "string"},
                "comparison": {
                    "type": "object",
                    "nullable": True,
                    "description": "The pre-registered endpoints, hypotheses and margins.",
                },
            },
        }
    )
    def get_protocol(self, comparison) -> dict:
        protocol = comparison.candidate.protocol
        return {
            "id": protocol.pk,
            "name": protocol.name,
            "version": protocol.version,
            "sha256": protocol.sha256,
            "comparison": (protocol.document or {}).get("comparison"),
        }

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "description": "The paired result once scored (null before): endpoints with their "
            "decisions, overall values, agreement tables and subgroup differences. Vendors and "
            "partners read it rounded, small subgroups without numbers.",
        }
    )
    def get_result(self, comparison) -> dict | None:
        if not comparison.result:
            return None
        return comparison_disclosed(comparison.result, audience=self.context["audience"])

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "description": "The comparison report's latest version once drafted (null before).",
            "properties": {
                "id": {"type": "integer"},
                "reference": {"type": "string"},
                "version": {"type": "integer"},
                "status": {"type": "string"},
            },
        }
    )
    def get_report(self, comparison) -> dict | None:
        report = comparison.reports.order_by("-version").first()
        if report is None:
            return None
        return {
            "id": report.pk,
            "reference": report.reference,
            "version": report.version,
            "status": report.status,
        }


def _audience(user, comparison: ComparisonRun) -> str:
    """Who reads the result, as for a run's results: 'team' every number, anyone else
    ('partner', 'vendor', auditors) what the issued comparison report shows."""
    return selectors.run_audience(user=user, run=comparison.candidate)


@extend_schema_view(
    list=extend_schema(
        description="The comparison runs you may see (both of their runs), newest first: all "
        "of them for the validation team and auditors, a vendor's on its own packages."
    ),
    retrieve=extend_schema(
        description="One comparison: its state, both runs and packages (SHA-256, lineage), "
        "the dataset version and its Merkle root, the protocol and its pre-registered "
        "comparison, the paired result once scored, and the comparison report once drafted."
    ),
)
class ComparisonViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ComparisonSerializer
    query_filters = (
        QueryFilter(
            "status", "status", "Only comparisons in this status.", ComparisonRun.Status.values
        ),
    )

    def get_queryset(self):
        return selectors.comparisons_visible_to(self.request.user)

    def get_object(self):
        return selectors.comparison_get_visible(user=self.request.user, pk=self.kwargs["pk"])

    def list(self, request, *args, **kwargs):
        """The comparison runs you may see, newest first."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        rows = [
            ComparisonSerializer(c, context={"audience": _audience(request.user, c)}).data
            for c in page or []
        ]
        return self.get_paginated_response(rows)

    def retrieve(self, request, *args, **kwargs):
        """One comparison run."""
        comparison = self.get_object()
        context = {"audience": _audience(request.user, comparison)}
        return Response(ComparisonSerializer(comparison, context=context).data)

    @extend_schema(request=ComparisonStartSerializer, responses={201: ComparisonSerializer})
    @problems(404, 409)
    def create(self, request):
        """Start a comparison of two versions of one model (validation team): the candidate
        package against the baseline its `supersedes` lineage reaches (or an earlier run of
        it), on one sealed dataset version, under a protocol that pre-registers the
        comparison. Both runs start as any run does (every check `run_start` applies, the
        protocol locked); answers 201 with the comparison `running`."""
        user = request.user
        if not selectors.is_validation_team(user):
            raise PermissionDenied("Only the validation team starts comparisons.")
        body = ComparisonStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        ids = body.validated_data
        # Each id through the user's scope, so a hidden one answers like a missing one.
        candidate = selectors.package_get_visible(user=user, pk=ids["candidate_package"])
        baseline = baseline_run = None
        if "baseline_run" in ids:
            baseline_run = selectors.run_get_visible(user=user, pk=ids["baseline_run"])
            if "baseline_package" in ids and baseline_run.package_id != ids["baseline_package"]:
                raise ApplicationError(
                    "The baseline run is not a run of the baseline package.",
                    errors=[{"path": "baseline_run", "detail": "Not a run of baseline_package."}],
                )
        else:
            baseline = selectors.package_get_visible(user=user, pk=ids["baseline_package"])
        comparison = comparison_start(
            actor=user,
            candidate=candidate,
            baseline=baseline,
            baseline_run=baseline_run,
            dataset_version=selectors.dataset_version_get_visible(
                user=user, pk=ids["dataset_version"]
            ),
            protocol=selectors.protocol_get_visible(user=user, pk=ids["protocol"]),
        )
        comparison = selectors.comparison_get_visible(user=user, pk=comparison.pk)
        return Response(
            ComparisonSerializer(comparison, context={"audience": "team"}).data,
            status=status.HTTP_201_CREATED,
        )
