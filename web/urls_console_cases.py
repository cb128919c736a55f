"""The review console's cases screens (issue 16): a run's results, its case table and the case
viewer with its images (PNG only)."""

from django.urls import path

from web.views import console_cases, console_results

urlpatterns = [
    path("console/runs/<int:pk>/results/", console_results.run_results, name="console-run-results"),
    path(
        "console/runs/<int:pk>/plots/<str:name>.svg",
        console_results.run_plot,
        name="console-run-plot",
    ),
    path("console/runs/<int:pk>/cases/", console_cases.case_list, name="console-run-cases"),
    path(
        "console/runs/<int:pk>/cases/<int:case_pk>/",
        console_cases.case_detail,
        name="console-case",
    ),
    path(
        "console/runs/<int:pk>/cases/<int:case_pk>/image.png",
        console_cases.case_image,
        name="console-case-image",
    ),
    path(
        "console/runs/<int:pk>/cases/<int:case_pk>/gradcam.png",
        console_cases.case_gradcam,
        name="console-case-gradcam",
    ),
    path(
        "console/runs/<int:pk>/cases/<int:case_pk>/roi.png",
        console_cases.case_roi,
        name="console-case-roi",
    ),
]
