"""Every read of the validation domain, already scoped to what the user may see.

A hidden object raises Http404 exactly like a missing one, so ids reveal nothing. List
endpoints use the same querysets as detail endpoints.
"""

from django.db.models import Q, QuerySet
from django.http import Http404

from validation.models import (
    Case,
    DatasetGrant,
    DatasetVersion,
    Membership,
    ModelPackage,
    Organisation,
    Role,
    ValidationRun,
)


def roles_of(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    return set(Membership.objects.filter(user=user).values_list("role", flat=True))


def org_ids_of(user, role: str) -> set[int]:
    if not user.is_authenticated:
        return set()
    return set(
        Membership.objects.filter(user=user, role=role).values_list("organisation_id", flat=True)
    )


def is_validation_team(user) -> bool:
    """Reviewers and QA approvers of a validator organisation see everything (audited)."""
    if not user.is_authenticated:
        return False
    return Membership.objects.filter(
        user=user,
        role__in=[Role.REVIEWER, Role.QA_APPROVER],
        organisation__kind=Organisation.Kind.VALIDATOR,
    ).exists()


def is_auditor(user) -> bool:
    return Role.AUDITOR in roles_of(user)


def _get_or_404(queryset: QuerySet, pk):
    try:
        return queryset.get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from exc


def packages_visible_to(user) -> QuerySet[ModelPackage]:
    qs = ModelPackage.objects.select_related("vendor")
    if is_validation_team(user) or is_auditor(user):
        return qs
    return qs.filter(vendor_id__in=org_ids_of(user, Role.VENDOR_MEMBER))


def package_get_visible(*, user, pk) -> ModelPackage:
    return _get_or_404(packages_visible_to(user), pk)


def dataset_versions_visible_to(user) -> QuerySet[DatasetVersion]:
    """Partners see their own; the validation team sees all. Vendors see dataset cards only
    (see dataset_cards_visible_to), never this queryset."""
    qs = DatasetVersion.objects.select_related("dataset__partner")
    if is_validation_team(user):
        return qs
    return qs.filter(dataset__partner_id__in=org_ids_of(user, Role.PARTNER_STEWARD))


def dataset_version_get_visible(*, user, pk) -> DatasetVersion:
    return _get_or_404(dataset_versions_visible_to(user), pk)


def runs_visible_to(user) -> QuerySet[ValidationRun]:
    qs = ValidationRun.objects.select_related(
        "package__vendor", "dataset_version__dataset__partner", "protocol"
    )
    if is_validation_team(user) or is_auditor(user):
        return qs
    return qs.filter(
        Q(package__vendor_id__in=org_ids_of(user, Role.VENDOR_MEMBER))
        | Q(dataset_version__dataset__partner_id__in=org_ids_of(user, Role.PARTNER_STEWARD))
    )


def run_get_visible(*, user, pk) -> ValidationRun:
    return _get_or_404(runs_visible_to(user), pk)


def run_audience(*, user, run: ValidationRun) -> str:
    """How much of a run this user may see: 'team' (case level, audited), 'partner' or
    'vendor' (aggregates, small cells suppressed)."""
    if is_validation_team(user):
        return "team"
    if run.dataset_version.dataset.partner_id in org_ids_of(user, Role.PARTNER_STEWARD):
        return "partner"
    return "vendor"


def cases_for_run(run: ValidationRun) -> QuerySet[Case]:
    """Case-level data: callers must be the validation team or internal pipeline stages."""
    return Case.objects.filter(dataset_version_id=run.dataset_version_id).order_by("case_id")


def active_grant_for(
    *, dataset_version: DatasetVersion, vendor: Organisation
) -> DatasetGrant | None:
    return (
        DatasetGrant.objects.filter(dataset_version=dataset_version, revoked_at__isnull=True)
        .filter(Q(vendor=vendor) | Q(vendor__isnull=True))
        .order_by("-allow_exemplars", "id")
        .first()
    )
