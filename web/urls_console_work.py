"""The review console's work screens (issue 16): the work queue, package review, the run
launcher and the run monitor."""

from django.urls import path

from web.views import console_packages, console_queue, console_runs

urlpatterns = [
    path("console/", console_queue.queue, name="console"),
    path("console/live/", console_queue.queue_live, name="console-live"),
    path("console/packages/", console_packages.package_list, name="console-packages"),
    path("console/packages/<int:pk>/", console_packages.package_detail, name="console-package"),
    path(
        "console/packages/<int:pk>/review/",
        console_packages.package_decide,
        name="console-package-review",
    ),
    path("console/runs/", console_runs.run_list, name="console-runs"),
    path("console/runs/new/", console_runs.run_new, name="console-run-new"),
    path(
        "console/runs/new/preflight/",
        console_runs.run_new_preflight,
        name="console-run-preflight",
    ),
    path("console/runs/<int:pk>/", console_runs.run_detail, name="console-run"),
    path("console/runs/<int:pk>/live/", console_runs.run_live, name="console-run-live"),
    path("console/runs/<int:pk>/cancel/", console_runs.run_stop, name="console-run-cancel"),
]
