from django.urls import include, path
from rest_framework.routers import DefaultRouter

from reports.api import ReportViewSet, signing_key
from validation.api.views import PackageViewSet, RunViewSet

router = DefaultRouter()
router.register("packages", PackageViewSet, basename="package")
router.register("runs", RunViewSet, basename="run")
router.register("reports", ReportViewSet, basename="report")

urlpatterns = [
    path("", include(router.urls)),
    path("signing-key/", signing_key, name="signing-key"),
]
