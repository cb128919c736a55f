"""Each person's overview: what their roles hold, with links to where the work is."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from reports import selectors as report_selectors
from reports.models import Report
from validation import selectors
from validation.models import DatasetImport, Role, RunStatus
from web.access import ROLE_LABELS, roles

ACTIVE_RUNS = [
    RunStatus.QUEUED,
    RunStatus.RUNNING,
    RunStatus.SCORING,
    RunStatus.EXPLAINING,
    RunStatus.REPORTING,
    RunStatus.AWAITING_SIGNATURE,
]


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    held = roles(request)
    memberships = user.memberships.select_related("organisation").order_by(  # type: ignore[union-attr]
        "organisation__name"
    )
    context: dict = {
        "title": "Overview",
        "section": "home",
        "memberships": [(m.organisation.name, ROLE_LABELS[Role(m.role)]) for m in memberships],
        "is_vendor": Role.VENDOR_MEMBER in held,
        "is_steward": Role.PARTNER_STEWARD in held,
    }
    if context["is_vendor"]:
        packages = selectors.packages_visible_to(user)
        context["package_counts"] = dict(
            packages.values_list("status").annotate(n=Count("id")).values_list("status", "n")
        )
        context["runs_active"] = (
            selectors.runs_visible_to(user).filter(status__in=ACTIVE_RUNS).count()
        )
    if context["is_steward"]:
        context["datasets"] = selectors.datasets_visible_to(user).count()
        context["grants_active"] = selectors.grants_visible_to(user).filter(revoked_at=None).count()
        context["imports_active"] = (
            selectors.dataset_imports_visible_to(user)
            .filter(status__in=[DatasetImport.Status.QUEUED, DatasetImport.Status.RUNNING])
            .count()
        )
    context["reports_issued"] = (
        report_selectors.reports_visible_to(user).filter(status=Report.Status.ISSUED).count()
    )
    return render(request, "web/home.html", context)
