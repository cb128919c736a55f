"""The review console's comparison runs (issue 18 item 13): the "Compare versions" launcher,
the list, and a comparison's page (live while its runs run, then the paired result)."""

from django.urls import path

from web.views import console_comparisons

urlpatterns = [
    path("console/comparisons/", console_comparisons.comparison_list, name="console-comparisons"),
    path(
        "console/comparisons/new/",
        console_comparisons.comparison_new,
        name="console-comparison-new",
    ),
    path(
        "console/comparisons/new/preflight/",
        console_comparisons.comparison_new_preflight,
        name="console-comparison-preflight",
    ),
    path(
        "console/comparisons/<int:pk>/",
        console_comparisons.comparison_detail,
        name="console-comparison",
    ),
    path(
        "console/comparisons/<int:pk>/live/",
        console_comparisons.comparison_live,
        name="console-comparison-live",
    ),
]
