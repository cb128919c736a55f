"""Reads of reports, scoped: vendors their own issued reports, partners those of runs on their
data, the validation team and auditors all."""

from django.db.models import Q, QuerySet

from reports.models import Report
from validation.models import Role
from validation.selectors import _get_or_404, is_auditor, is_validation_team, org_ids_of


def reports_visible_to(user) -> QuerySet[Report]:
    qs = Report.objects.select_related("run__package__vendor", "run__dataset_version__dataset")
    if is_validation_team(user) or is_auditor(user):
        return qs
    return qs.filter(status=Report.Status.ISSUED).filter(
        Q(run__package__vendor_id__in=org_ids_of(user, Role.VENDOR_MEMBER))
        | Q(run__dataset_version__dataset__partner_id__in=org_ids_of(user, Role.PARTNER_STEWARD))
    )


def report_get_visible(*, user, pk) -> Report:
    return _get_or_404(reports_visible_to(user), pk)


def report_is_current(report: Report) -> bool:
    return not Report.objects.filter(supersedes=report, issued_at__isnull=False).exists()
