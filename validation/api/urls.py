from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from reports.api import ReportViewSet, signing_key
from validation.api.accounts import MeView, OrganisationViewSet
from validation.api.auth import TokenObtainView
from validation.api.comparisons import ComparisonViewSet
from validation.api.datasets import (
    DatasetCardViewSet,
    DatasetImportViewSet,
    DatasetViewSet,
    GrantViewSet,
)
from validation.api.protocols import ProtocolViewSet
from validation.api.views import PackageViewSet, RunViewSet, manifest_schema, protocol_schema

router = DefaultRouter()
router.register("packages", PackageViewSet, basename="package")
router.register("runs", RunViewSet, basename="run")
router.register("comparisons", ComparisonViewSet, basename="comparison")
router.register("datasets", DatasetViewSet, basename="dataset")
router.register("dataset-imports", DatasetImportViewSet, basename="dataset-import")
router.register("dataset-cards", DatasetCardViewSet, basename="dataset-card")
router.register("grants", GrantViewSet, basename="grant")
router.register("reports", ReportViewSet, basename="report")
# Who a user needs to name (organisations) and the analysis plans (protocols).
router.register("organisations", OrganisationViewSet, basename="organisation")
router.register("protocols", ProtocolViewSet, basename="protocol")

urlpatterns = [
    path("", include(router.urls)),
    path("signing-key/", signing_key, name="signing-key"),
    path("schemas/package-manifest/<str:version>/", manifest_schema, name="manifest-schema"),
    path("schemas/protocol/", protocol_schema, name="protocol-schema"),
    # Named tokens for scripts and the blindspot command (username and password).
    path("auth/token/", TokenObtainView.as_view(), name="auth-token"),
    path("me/", MeView.as_view(), name="me"),
    # The public OpenAPI document and its Swagger UI (no token needed).
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", template_name="api/docs.html", title="Blindspot API"
        ),
        name="api-docs",
    ),
]
