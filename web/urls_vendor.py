"""The vendor portal: packages, runs and their results."""

from django.urls import path

from web.views import packages, runs

urlpatterns = [
    path("packages/", packages.package_list, name="packages"),
    path("packages/upload/", packages.package_upload, name="package-upload"),
    path("packages/<int:pk>/", packages.package_detail, name="package"),
    path("packages/<int:pk>/status/", packages.package_status, name="package-status"),
    path("runs/", runs.run_list, name="runs"),
    path("runs/<int:pk>/", runs.run_detail, name="run"),
    path("runs/<int:pk>/progress/", runs.run_progress, name="run-progress"),
    path("runs/<int:pk>/results/", runs.run_results, name="run-results"),
    path("runs/<int:pk>/plots/<str:name>.svg", runs.run_plot, name="run-plot"),
]
