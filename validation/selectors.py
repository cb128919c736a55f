"""Every read of the validation domain, already scoped to what the user may see.

A hidden object raises Http404 exactly like a missing one, so ids reveal nothing. List
endpoints use the same querysets as detail endpoints.
"""

import io
from collections import Counter
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Case as CaseWhen
from django.db.models import CharField, Count, F, Q, QuerySet, Value, When
from django.http import Http404
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from validation.models import (
    SERVICE_FAILURES,
    ApiToken,
    Case,
    ComparisonRun,
    Dataset,
    DatasetGrant,
    DatasetImport,
    DatasetVersion,
    Explanation,
    Membership,
    MetricResult,
    ModelPackage,
    Organisation,
    Prediction,
    Protocol,
    Role,
    ValidationRun,
    WorkerPresence,
)
from validation.stats.acceptance import bin_label
from validation.stats.disclosure import counts_disclosed
from validation.stats.exemplars import ALL_CASES, Exemplar, ScoredCase, exemplars_select
from validation.stats.localisation import roi_area_fraction
from validation.stats.metrics.subgroups import UNKNOWN
from validation.study_card import study_card_missing, study_card_rows


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


def get_or_404(queryset: QuerySet, pk):
    try:
        return queryset.get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given query.") from exc


def packages_visible_to(user) -> QuerySet[ModelPackage]:
    qs = ModelPackage.objects.select_related("vendor", "supersedes")
    if is_validation_team(user) or is_auditor(user):
        return qs
    return qs.filter(vendor_id__in=org_ids_of(user, Role.VENDOR_MEMBER))


def package_get_visible(*, user, pk) -> ModelPackage:
    return get_or_404(packages_visible_to(user), pk)


def dataset_versions_visible_to(user) -> QuerySet[DatasetVersion]:
    """Partners see their own; the validation team sees all. Vendors see dataset cards only
    (see dataset_cards_visible_to), never this queryset."""
    qs = DatasetVersion.objects.select_related("dataset__partner")
    if is_validation_team(user):
        return qs
    return qs.filter(dataset__partner_id__in=org_ids_of(user, Role.PARTNER_STEWARD))


def dataset_version_get_visible(*, user, pk) -> DatasetVersion:
    return get_or_404(dataset_versions_visible_to(user), pk)


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
    return get_or_404(runs_visible_to(user), pk)


def comparisons_visible_to(user) -> QuerySet[ComparisonRun]:
    """The comparison runs whose two runs this user may both see: all of them for the
    validation team and auditors, a vendor's on its own packages, a partner's on its data."""
    qs = ComparisonRun.objects.select_related(
        "baseline__package__vendor",
        "baseline__package__supersedes",
        "candidate__package__vendor",
        "candidate__package__supersedes",
        "candidate__dataset_version__dataset__partner",
        "candidate__protocol",
    )
    if is_validation_team(user) or is_auditor(user):
        return qs
    visible = runs_visible_to(user).values("pk")
    return qs.filter(baseline__in=visible, candidate__in=visible)


def comparison_get_visible(*, user, pk) -> ComparisonRun:
    return get_or_404(comparisons_visible_to(user), pk)


def run_audience(*, user, run: ValidationRun) -> str:
    """How much of a run this user may see: 'team' (case level, audited), 'partner' or
    'vendor' (aggregates, small cells suppressed)."""
    if is_validation_team(user):
        return "team"
    if run.dataset_version.dataset.partner_id in org_ids_of(user, Role.PARTNER_STEWARD):
        return "partner"
    return "vendor"


def cases_for_run(run: ValidationRun) -> QuerySet[Case]:
    """Case-level data, for the pipeline's stages. Any read on a person's behalf records
    CASE_DATA_VIEWED in the same transaction (no API endpoint or admin page returns it)."""
    return Case.objects.filter(dataset_version_id=run.dataset_version_id).order_by("case_id")


def active_grants(
    *, dataset_version: DatasetVersion, vendor: Organisation, protocol: Protocol | None = None
) -> QuerySet[DatasetGrant]:
    """The grants that let `vendor` use this version (under `protocol`, when given): for this
    vendor or any vendor, for this protocol or any, not revoked."""
    qs = DatasetGrant.objects.filter(dataset_version=dataset_version, revoked_at__isnull=True)
    qs = qs.filter(Q(vendor=vendor) | Q(vendor__isnull=True))
    if protocol is not None:
        qs = qs.filter(Q(protocol=protocol) | Q(protocol__isnull=True))
    return qs


def active_grant_for(
    *, dataset_version: DatasetVersion, vendor: Organisation, protocol: Protocol | None = None
) -> DatasetGrant | None:
    """One applicable grant, preferring one that allows exemplar images."""
    grants = active_grants(dataset_version=dataset_version, vendor=vendor, protocol=protocol)
    return grants.order_by("-allow_exemplars", "id").first()


# --- partner datasets ---------------------------------------------------------------------------


def datasets_visible_to(user) -> QuerySet[Dataset]:
    qs = Dataset.objects.select_related("partner").order_by("partner__name", "name")
    if is_validation_team(user):
        return qs
    return qs.filter(partner_id__in=org_ids_of(user, Role.PARTNER_STEWARD))


def dataset_get_visible(*, user, pk) -> Dataset:
    return get_or_404(datasets_visible_to(user), pk)


def dataset_imports_visible_to(user) -> QuerySet[DatasetImport]:
    qs = DatasetImport.objects.select_related("dataset__partner", "version").order_by("-id")
    if is_validation_team(user):
        return qs
    return qs.filter(dataset__partner_id__in=org_ids_of(user, Role.PARTNER_STEWARD))


def grants_visible_to(user) -> QuerySet[DatasetGrant]:
    qs = DatasetGrant.objects.select_related(
        "dataset_version__dataset__partner", "vendor", "protocol"
    ).order_by("-id")
    if is_validation_team(user):
        return qs
    return qs.filter(
        dataset_version__dataset__partner_id__in=org_ids_of(user, Role.PARTNER_STEWARD)
    )


def grant_get_visible(*, user, pk) -> DatasetGrant:
    return get_or_404(grants_visible_to(user), pk)


def dataset_cards_visible_to(user) -> QuerySet[DatasetVersion]:
    """Sealed versions whose card this user may read: a vendor those granted to it (or to any
    vendor) and not revoked; partners their own; the team all."""
    qs = DatasetVersion.objects.filter(status=DatasetVersion.Status.SEALED).select_related(
        "dataset__partner"
    )
    if is_validation_team(user) or is_auditor(user):
        return qs
    vendors = org_ids_of(user, Role.VENDOR_MEMBER)
    for_vendor = Q(vendor_id__in=vendors) | Q(vendor__isnull=True) if vendors else Q(pk__in=[])
    granted = DatasetGrant.objects.filter(for_vendor, revoked_at__isnull=True)
    return qs.filter(
        Q(pk__in=granted.values("dataset_version_id"))
        | Q(dataset__partner_id__in=org_ids_of(user, Role.PARTNER_STEWARD))
    ).distinct()


def dataset_card_get_visible(*, user, pk) -> DatasetVersion:
    return get_or_404(dataset_cards_visible_to(user), pk)


AGE_BANDS = ((0, 17, "0-17"), (18, 39, "18-39"), (40, 59, "40-59"), (60, 79, "60-79"))
CARD_ATTRIBUTES = ("sex", "age_band", "race", "ethnicity", "site", "manufacturer")


def age_band(age) -> str:
    if not isinstance(age, int):
        return "unknown"
    for low, high, name in AGE_BANDS:
        if low <= age <= high:
            return name
    return "80+"


def dataset_card(version: DatasetVersion) -> dict:
    """What a vendor may know of a dataset version: size, modality, sites, and demographic
    distributions with cells under the dataset's minimum size suppressed. Never case level."""
    min_cell = version.dataset.card_min_cell
    rows = list(version.cases.values_list("attributes", "read_error", "label"))
    readable = [(attributes, label) for attributes, error, label in rows if not error]
    distributions: dict[str, Counter] = {name: Counter() for name in CARD_ATTRIBUTES}
    for attributes, _label in readable:
        for name in CARD_ATTRIBUTES:
            value = age_band(attributes.get("age")) if name == "age_band" else attributes.get(name)
            distributions[name][str(value) if value not in (None, "") else "unknown"] += 1
    sites = {a.get("site") or a.get("institution") for a, _ in readable} - {None, ""}
    positives = sum(label for _a, label in readable)
    return {
        "id": version.pk,
        "dataset": version.dataset.name,
        "partner": version.dataset.partner.name,
        "version": version.version,
        "merkle_root": version.merkle_root,
        "sealed_at": version.sealed_at.isoformat() if version.sealed_at else None,
        "modality": version.modality,
        "identity_policy": version.identity_policy,
        "cases": len(rows),
        "readable_cases": len(readable),
        "unreadable_cases": len(rows) - len(readable),
        "sites": len(sites),
        "min_cell": min_cell,
        "labels": counts_disclosed(
            {"positive": positives, "negative": len(readable) - positives}, min_cell=min_cell
        ),
        "demographics": {
            name: counts_disclosed(dict(counts), min_cell=min_cell)
            for name, counts in distributions.items()
        },
        "study_card": study_card_of(version),
    }


def study_card_of(version: DatasetVersion) -> dict[str, Any]:
    """A version's frozen study card as shown everywhere (partner pages, vendor cards, the API,
    the report): the card, its SHA-256 and the labels of the entries it lacks. `recorded` is
    false for a version sealed before study cards were recorded (no card, every entry missing).
    Partner-authored metadata with no per-case data: fine to show a granted vendor."""
    card = version.study_card
    return {
        "recorded": card is not None,
        "card": card or {},
        "sha256": version.study_card_sha256,
        "missing": study_card_missing(card or {}),
    }


def study_card_display(card: dict | None) -> list[dict]:
    """A card (frozen, or a dataset's draft) as the pages show it: one row per entry, a missing
    one with no value (the pages print it as missing)."""
    return study_card_rows(card or {})


def dataset_usage(*, dataset: Dataset) -> QuerySet[ValidationRun]:
    """The partner's usage log: every run on any version of the dataset, who asked, with which
    package and protocol, when, and how it ended (also in the audit chain as DATASET_USED)."""
    return (
        ValidationRun.objects.filter(dataset_version__dataset=dataset)
        .select_related("package__vendor", "protocol", "requested_by", "dataset_version")
        .order_by("-queued_at", "-id")
    )


def runs_used(*, dataset_version: DatasetVersion, vendor: Organisation) -> int:
    """Runs that count against the caps: every run of this vendor on this version that was not
    cancelled and did not fail by the service's fault (`SERVICE_FAILURES`: our bug, no sandbox,
    a withdrawn grant); a failure of the model counts."""
    return (
        ValidationRun.objects.filter(dataset_version=dataset_version, package__vendor=vendor)
        .exclude(status=ValidationRun.Status.CANCELLED)
        .exclude(status=ValidationRun.Status.FAILED, failure_category__in=SERVICE_FAILURES)
        .count()
    )


def live_workers() -> list[WorkerPresence]:
    """GPU workers whose heartbeat is fresher than WORKER_STALE_S."""
    since = timezone.now() - timedelta(seconds=settings.WORKER_STALE_S)
    return list(WorkerPresence.objects.filter(heartbeat_at__gte=since).order_by("hostname"))


def run_execution(run: ValidationRun, shards: list | None = None) -> dict:
    """How a run's inference went: shards, the workers and devices that finished them, cold
    starts, deliveries beyond the first (workers lost), and summed stage seconds. `shards`: the
    run's shards when the caller already holds them."""
    shards = list(run.shards.all()) if shards is None else shards
    totals: Counter = Counter()
    for shard in shards:
        totals.update({k: v for k, v in shard.seconds.items() if k != "wall"})
    return {
        "shards": len(shards),
        "workers": sorted({s.worker for s in shards if s.worker}),
        "devices": sorted({s.device for s in shards if s.device}),
        "cold_starts": sum(1 for s in shards if s.cold_start),
        "redeliveries": sum(max(0, s.attempts - 1) for s in shards),
        "seconds": {key: round(value, 3) for key, value in sorted(totals.items())},
    }


# --- what the API looks up by id before a service checks the actor's rights ----------------------
# Each lookup is scoped to what the user may name, so a hidden row answers like a missing one;
# the service that receives the row then decides what the actor may do with it.


def protocols_visible_to(user) -> QuerySet[Protocol]:
    """The validation team, auditors and partner stewards (who grant per protocol) may name any
    protocol; a vendor only those of its runs and of grants that apply to it, and every locked
    one where a grant to it names no protocol (it may be validated under any of them)."""
    qs = Protocol.objects.all()
    if is_validation_team(user) or is_auditor(user) or org_ids_of(user, Role.PARTNER_STEWARD):
        return qs
    vendors = org_ids_of(user, Role.VENDOR_MEMBER)
    if not vendors:  # a grant to any vendor applies to vendors only
        return qs.none()
    granted = DatasetGrant.objects.filter(
        Q(vendor_id__in=vendors) | Q(vendor__isnull=True), revoked_at__isnull=True
    )
    visible = Q(
        pk__in=ValidationRun.objects.filter(package__vendor_id__in=vendors).values("protocol")
    ) | Q(pk__in=granted.values("protocol"))
    if granted.filter(protocol__isnull=True).exists():
        visible |= Q(locked_at__isnull=False)
    return qs.filter(visible)


def protocol_get_visible(*, user, pk) -> Protocol:
    return get_or_404(protocols_visible_to(user), pk)


def organisations_visible_to(user) -> QuerySet[Organisation]:
    """The organisations a user may name by id: their own; the validation team
    and auditors every one; a partner steward every vendor (to grant datasets to); a vendor
    member the partners whose datasets are granted to it (or to any vendor) or its runs used."""
    qs = Organisation.objects.order_by("pk")
    if is_validation_team(user) or is_auditor(user):
        return qs
    visible = Q(pk__in=Membership.objects.filter(user_id=user.pk).values("organisation_id"))
    if org_ids_of(user, Role.PARTNER_STEWARD):
        visible |= Q(kind=Organisation.Kind.VENDOR)
    vendors = org_ids_of(user, Role.VENDOR_MEMBER)
    if vendors:
        partner = "dataset_version__dataset__partner_id"
        granted = DatasetGrant.objects.filter(
            Q(vendor_id__in=vendors) | Q(vendor__isnull=True), revoked_at__isnull=True
        )
        used = ValidationRun.objects.filter(package__vendor_id__in=vendors)
        visible |= Q(pk__in=granted.values(partner)) | Q(pk__in=used.values(partner))
    return qs.filter(visible)


def organisation_get_visible(*, user, pk) -> Organisation:
    return get_or_404(organisations_visible_to(user), pk)


def memberships_of(user) -> QuerySet[Membership]:
    """The user's own memberships with their organisations, by organisation then role."""
    return (
        Membership.objects.filter(user_id=user.pk)
        .select_related("organisation")
        .order_by("organisation_id", "role")
    )


def partner_get_visible(*, user, pk) -> Organisation:
    """A partner organisation the user may name: the team any; others those they steward."""
    qs = Organisation.objects.filter(kind=Organisation.Kind.PARTNER)
    if not is_validation_team(user):
        qs = qs.filter(pk__in=org_ids_of(user, Role.PARTNER_STEWARD))
    return get_or_404(qs, pk)


def vendor_get_visible(*, user, pk) -> Organisation:
    """A vendor organisation the user may name: the team and partner stewards (who grant to
    vendors by id) any vendor; a vendor member its own. Another kind of organisation answers
    like a missing one."""
    qs = Organisation.objects.filter(kind=Organisation.Kind.VENDOR)
    if not (is_validation_team(user) or org_ids_of(user, Role.PARTNER_STEWARD)):
        qs = qs.filter(pk__in=org_ids_of(user, Role.VENDOR_MEMBER))
    return get_or_404(qs, pk)


def run_results(run: ValidationRun) -> dict[str, Any]:
    """The stored result sections of a run, by section name (empty until it is scored)."""
    return {m.section: m.value for m in MetricResult.objects.filter(run=run)}


def dataset_versions_summary(dataset: Dataset) -> list[dict[str, Any]]:
    """Each version of a dataset with its case counts, in version order."""
    versions = dataset.versions.order_by("version").annotate(
        n_cases=Count("cases"), n_unreadable=Count("cases", filter=~Q(cases__read_error=""))
    )
    return [
        {
            "id": v.pk,
            "version": v.version,
            "status": v.status,
            "merkle_root": v.merkle_root,
            "sealed_at": v.sealed_at,
            "cases": v.n_cases,
            "unreadable_cases": v.n_unreadable,
            "import_seconds": v.import_seconds,
        }
        for v in versions
    ]


# --- the partner's pages ------------------------------------------------------------------------

VERSION_CHARTS = (
    ("site", "Site"),
    ("manufacturer", "Scanner manufacturer"),
    ("sex", "Sex"),
    ("age_band", "Age band"),
)


def partners_stewarded_by(user) -> QuerySet[Organisation]:
    """The partner organisations this user stewards (where they may create datasets)."""
    return Organisation.objects.filter(
        kind=Organisation.Kind.PARTNER, pk__in=org_ids_of(user, Role.PARTNER_STEWARD)
    ).order_by("name")


def dataset_version_profile(version: DatasetVersion) -> dict[str, Any]:
    """Everything a partner may know of their own version, unsuppressed: case counts, labels,
    unreadable files by reason, and each chart's distribution (largest first) over readable
    cases. One query; never a vendor's view (see dataset_card)."""
    rows = list(version.cases.values_list("attributes", "read_error", "label"))
    readable = [(attributes, label) for attributes, error, label in rows if not error]
    reasons = Counter(error for _a, error, _l in rows if error)
    charts = []
    for name, label in VERSION_CHARTS:
        counts: Counter = Counter()
        for attributes, _label in readable:
            value = age_band(attributes.get("age")) if name == "age_band" else attributes.get(name)
            counts[str(value) if value not in (None, "") else "unknown"] += 1
        ordered = (
            sorted(counts.items(), key=lambda kv: (kv[0] == "unknown", kv[0]))
            if name == "age_band"
            else counts.most_common()
        )
        top = max(counts.values(), default=0)
        charts.append(
            {
                "name": name,
                "label": label,
                "top": top,
                "bars": [{"value": k, "count": n} for k, n in ordered],
            }
        )
    positives = sum(label for _a, label in readable)
    return {
        "cases": len(rows),
        "readable": len(readable),
        "unreadable": len(rows) - len(readable),
        "positives": positives,
        "negatives": len(readable) - positives,
        "unreadable_by_reason": reasons.most_common(),
        "charts": charts,
    }


def dataset_version_unreadable(version: DatasetVersion) -> QuerySet[Case]:
    """The version's cases whose file could not be read or was refused, with the reason."""
    return (
        version.cases.exclude(read_error="")
        .only("case_id", "read_error", "dataset_version_id")
        .order_by("case_id")
    )


def dataset_import_get_visible(*, user, pk) -> DatasetImport:
    return get_or_404(dataset_imports_visible_to(user), pk)


def _counted_runs() -> QuerySet[ValidationRun]:
    return ValidationRun.objects.exclude(status=ValidationRun.Status.CANCELLED).exclude(
        status=ValidationRun.Status.FAILED, failure_category__in=SERVICE_FAILURES
    )


def runs_used_by_grant(grants: list[DatasetGrant]) -> dict[int, int | None]:
    """runs_used for each grant at once (one query): None for a grant to any vendor."""
    versions = {g.dataset_version_id for g in grants}
    counts = {
        (row["dataset_version_id"], row["package__vendor_id"]): row["n"]
        for row in _counted_runs()
        .filter(dataset_version_id__in=versions)
        .values("dataset_version_id", "package__vendor_id")
        .annotate(n=Count("id"))
    }
    return {
        g.pk: None if g.vendor_id is None else counts.get((g.dataset_version_id, g.vendor_id), 0)
        for g in grants
    }


def grant_revocation_reasons(grants: list[DatasetGrant]) -> dict[int, str]:
    """The reason each revoked grant was revoked with, from its DATASET_GRANT_REVOKED event."""
    revoked = [str(g.pk) for g in grants if g.revoked_at is not None]
    if not revoked:
        return {}
    events = AuditEvent.objects.filter(
        action=AuditAction.DATASET_GRANT_REVOKED,
        target_type=DatasetGrant._meta.label,
        target_id__in=revoked,
    ).values_list("target_id", "payload")
    return {int(target): payload.get("reason", "") for target, payload in events}


def grantable_versions(user) -> QuerySet[DatasetVersion]:
    """The steward's sealed versions, which they may grant."""
    return (
        DatasetVersion.objects.filter(
            status=DatasetVersion.Status.SEALED,
            dataset__partner_id__in=org_ids_of(user, Role.PARTNER_STEWARD),
        )
        .select_related("dataset__partner")
        .order_by("dataset__name", "version")
    )


def grantable_vendors() -> QuerySet[Organisation]:
    return Organisation.objects.filter(kind=Organisation.Kind.VENDOR).order_by("name")


def locked_protocols() -> QuerySet[Protocol]:
    return Protocol.objects.filter(locked_at__isnull=False).order_by("name", "version")


def usage_visible_to(user, *, dataset: Dataset | None = None) -> QuerySet[ValidationRun]:
    """The usage log across the steward's datasets (or one of them): every run on their data,
    newest first, as dataset_usage gives it per dataset."""
    qs = ValidationRun.objects.filter(
        dataset_version__dataset__partner_id__in=org_ids_of(user, Role.PARTNER_STEWARD)
    )
    if dataset is not None:
        qs = qs.filter(dataset_version__dataset=dataset)
    return qs.select_related(
        "package__vendor", "protocol", "requested_by", "dataset_version__dataset"
    ).order_by("-queued_at", "-id")


def datasets_with_counts(user) -> QuerySet[Dataset]:
    """The user's datasets with how many versions and imports each has (one query)."""
    return datasets_visible_to(user).annotate(
        n_versions=Count("versions", distinct=True), n_imports=Count("imports", distinct=True)
    )


# --- API tokens and dataset cards, for the web pages ----------------------------------------------


def api_tokens_of(user) -> QuerySet[ApiToken]:
    """The user's own named API tokens, newest first (never anyone else's)."""
    return ApiToken.objects.filter(user_id=user.pk)


def api_token_get_own(*, user, pk) -> ApiToken:
    return get_or_404(api_tokens_of(user), pk)


def dataset_cards_listed(user) -> QuerySet[DatasetVersion]:
    """`dataset_cards_visible_to` with each version's case count, newest seal first."""
    return (
        dataset_cards_visible_to(user)
        .annotate(n_cases=Count("cases"))
        .order_by("-sealed_at", "-id")
    )


# --- the vendor portal's pages -------------------------------------------------------------------


def package_other_versions(package: ModelPackage) -> QuerySet[ModelPackage]:
    """The other versions of the same model: the same vendor and name, newest first."""
    return (
        ModelPackage.objects.filter(vendor_id=package.vendor_id, name=package.name)
        .exclude(pk=package.pk)
        .order_by("-submitted_at", "-id")
    )


def package_runs_visible(*, user, package: ModelPackage) -> QuerySet[ValidationRun]:
    """The runs of one package that this user may see, newest first."""
    return runs_visible_to(user).filter(package=package).order_by("-queued_at", "-id")


#: Runs of "similar size" have a number of cases within this factor of each other.
SIMILAR_SIZE_FACTOR = 2


def _reported_durations() -> list[tuple[int, float]]:
    """(cases, seconds from queued to report drafted) of every run that got that far."""
    done = ValidationRun.objects.filter(
        status__in=[ValidationRun.Status.AWAITING_SIGNATURE, ValidationRun.Status.ISSUED],
        finished_at__isnull=False,
    ).values_list("cases_total", "queued_at", "finished_at")
    return [(n, (end - start).total_seconds()) for n, start, end in done if end and start]


def _typical(cases_total: int, durations: list[tuple[int, float]]) -> dict[str, Any]:
    similar = sorted(
        seconds
        for n, seconds in durations
        if n
        and cases_total
        and cases_total / SIMILAR_SIZE_FACTOR <= n <= cases_total * SIMILAR_SIZE_FACTOR
    )
    if not similar:
        return {"seconds": None, "based_on": 0}
    middle = len(similar) // 2
    median = similar[middle] if len(similar) % 2 else (similar[middle - 1] + similar[middle]) / 2
    return {"seconds": median, "based_on": len(similar)}


def run_typical_duration(run: ValidationRun) -> dict[str, Any]:
    """How long runs of similar size (cases within a factor of `SIMILAR_SIZE_FACTOR`) took from
    queued to their report drafted: the median in seconds and how many runs it is based on
    (`seconds` None when there is none yet). Shown instead of a guessed ETA; a median over
    every vendor's runs says nothing about any one of them."""
    return _typical(run.cases_total, _reported_durations())


def runs_typical_durations(runs: list[ValidationRun]) -> dict[int, dict[str, Any]]:
    """`run_typical_duration` for each of `runs` (by run id), from one query."""
    durations = _reported_durations()
    return {run.pk: _typical(run.cases_total, durations) for run in runs}


# --- the console's case table and case viewer (case-level: callers record CASE_DATA_VIEWED) ----

#: The outcomes a case can have in a run, as the stats decide them (see `run_case_rows`).
CASE_OUTCOMES = ("TP", "FP", "FN", "TN", "failed")
#: The case table's sort orders.
CASE_SORTS = {"score-desc": ("-score", "case__case_id"), "score-asc": ("score", "case__case_id")}


def run_operating_threshold(run: ValidationRun) -> float:
    """The run's operating threshold: the vendor's declared threshold in the package manifest,
    which the protocol's operating point fixes as the only source (never tuned on test data);
    the scoring service uses exactly this value."""
    return float(run.package.manifest["threshold"])


def run_subgroup_attributes(run: ValidationRun) -> dict[str, list[float] | None]:
    """The protocol's subgroup attributes and, for binned ones, their bins."""
    return {s["attribute"]: s.get("bins") for s in run.protocol.document.get("subgroups", [])}


def _subgroup_q(attribute: str, value: str, bins: list[float] | None) -> Q:
    """Cases whose `attribute` falls in the subgroup labelled `value` as the stats label it
    (validation.stats.acceptance.bin_label for binned attributes; 'unknown' for missing)."""
    key = f"case__attributes__{attribute}"
    if value == UNKNOWN:
        missing = Q(**{f"{key}__isnull": True}) | Q(**{key: ""})
        if bins:  # a number outside every bin is unknown too
            outside = Q(**{f"{key}__lt": bins[0]}) | Q(**{f"{key}__gte": bins[-1]})
            return missing | outside
        return missing
    if bins:
        for low, high in zip(bins, bins[1:], strict=False):
            if bin_label(low, bins) == value:
                return Q(**{f"{key}__gte": low, f"{key}__lt": high})
        return Q(pk__in=[])
    return Q(**{key: value})


def run_case_rows(
    run: ValidationRun,
    *,
    subgroup: tuple[str, str] | None = None,
    outcome: str | None = None,
    score_min: float | None = None,
    score_max: float | None = None,
    site: str | None = None,
    scanner: str | None = None,
    sort: str = "score-desc",
) -> QuerySet[Prediction]:
    """A run's predictions with their cases, filtered and sorted, each annotated with its
    `outcome`: 'failed' when the model gave no score, else predicted positive when
    ``score >= threshold`` (validation.stats.metrics.binary.predict) against the reference
    label: TP, FP, FN, TN. Case-level: the caller records the view."""
    threshold = run_operating_threshold(run)
    failed = ~Q(error_category="")
    qs = (
        Prediction.objects.filter(run=run)
        .select_related("case")
        .annotate(
            outcome=CaseWhen(
                When(failed, then=Value("failed")),
                When(score__gte=threshold, case__label=1, then=Value("TP")),
                When(score__gte=threshold, case__label=0, then=Value("FP")),
                When(score__lt=threshold, case__label=1, then=Value("FN")),
                default=Value("TN"),
                output_field=CharField(),
            )
        )
    )
    if subgroup is not None:
        attribute, value = subgroup
        bins = run_subgroup_attributes(run).get(attribute)
        qs = qs.filter(_subgroup_q(attribute, value, bins))
    if outcome:
        qs = qs.filter(outcome=outcome)
    if score_min is not None:
        qs = qs.filter(score__gte=score_min)
    if score_max is not None:
        qs = qs.filter(score__lte=score_max)
    if site:
        qs = qs.filter(case__attributes__site=site)
    if scanner:
        qs = qs.filter(case__attributes__manufacturer=scanner)
    field, tiebreak = CASE_SORTS.get(sort, CASE_SORTS["score-desc"])
    score = (
        F("score").desc(nulls_last=True) if field == "-score" else F("score").asc(nulls_last=True)
    )
    return qs.order_by(score, tiebreak)


def run_case_choices(run: ValidationRun) -> dict[str, list[str]]:
    """The sites and scanners (manufacturers) among a run's cases, for the table's filters."""
    values = Case.objects.filter(dataset_version_id=run.dataset_version_id).values_list(
        "attributes__site", "attributes__manufacturer"
    )
    sites = sorted({str(s) for s, _m in values if s not in (None, "")})
    scanners = sorted({str(m) for _s, m in values if m not in (None, "")})
    return {"sites": sites, "scanners": scanners}


def run_case_get(run: ValidationRun, case_pk: int) -> tuple[Case, Prediction | None, Any]:
    """One case of a run's dataset version with its prediction (with `outcome`) and Grad-CAM
    explanation (either None when there is none); Http404 for a case of another version."""
    case = get_or_404(Case.objects.filter(dataset_version_id=run.dataset_version_id), case_pk)
    prediction = run_case_rows(run).filter(case=case).first()
    explanation = Explanation.objects.filter(run=run, case=case).first()
    return case, prediction, explanation


def explanation_cam(explanation: Explanation):
    """A stored Grad-CAM map as floats in [0, 1] (stored as uint8 .npy)."""
    return np.load(io.BytesIO(bytes(explanation.cam_npy)), allow_pickle=False) / 255.0


def run_localisation(run: ValidationRun) -> dict[str, Any] | None:
    """Grad-CAM localisation agreement over the run's cases with a reference ROI (pointing
    game hit rate, mean share of the map's energy inside the ROI) and its chance level (the
    ROIs' mean share of the map: a random peak's hit rate, a flat map's energy inside), as the
    report prints it; None when no explanation has a ROI. Aggregate: no case-level data."""
    with_roi = list(
        Explanation.objects.filter(run=run, pointing_hit__isnull=False)
        .select_related("case")
        .order_by("case__case_id")
    )
    if not with_roi:
        return None
    fractions = [
        roi_area_fraction(
            e.case.roi,
            source_shape=(e.case.attributes.get("rows"), e.case.attributes.get("columns")),
            map_shape=explanation_cam(e).shape,
        )
        for e in with_roi
    ]
    return {
        "n_maps": Explanation.objects.filter(run=run).count(),
        "n_with_roi": len(with_roi),
        "pointing_game": sum(bool(e.pointing_hit) for e in with_roi) / len(with_roi),
        "energy_in_roi": float(np.mean([e.energy_in_roi for e in with_roi])),
        "chance": float(np.mean(fractions)),
    }


def run_exemplars_allowed(run: ValidationRun) -> bool:
    """Whether a grant that lets the run's vendor use its dataset version allows exemplar
    images (Grad-CAM overlays of partner images) in reports."""
    grant = active_grant_for(dataset_version=run.dataset_version, vendor=run.package.vendor)
    return bool(grant and grant.allow_exemplars)


def run_exemplar_cases(run: ValidationRun) -> tuple[list[tuple[Exemplar, Case]], str | None]:
    """The exemplars the stated rule (`stats.exemplars`) chooses from the run's scored cases at
    the package's threshold, each with its case, and the subgroup attribute it stratified by
    (the protocol's first; None when it names none). Case-level data, for the pipeline."""
    specs = run.protocol.document.get("subgroups") or []
    spec = specs[0] if specs else None
    predictions = (
        Prediction.objects.filter(run=run, error_category="", score__isnull=False)
        .select_related("case")
        .order_by("case__case_id")
    )
    cases = {p.case.case_id: p.case for p in predictions}
    scored = [
        ScoredCase(
            case_id=p.case.case_id,
            label=p.case.label,
            score=float(p.score),
            group=_exemplar_group(p.case, spec),
        )
        for p in predictions
        if p.score is not None
    ]
    chosen = exemplars_select(scored, threshold=float(run.package.manifest["threshold"]))
    return [(pick, cases[pick.case_id]) for pick in chosen], spec["attribute"] if spec else None


def _exemplar_group(case: Case, spec: dict | None) -> str:
    """The case's group under a subgroup spec, as the subgroup tables name it."""
    if spec is None:
        return ALL_CASES
    value = case.attributes.get(spec["attribute"])
    if spec.get("bins"):
        value = bin_label(value, spec["bins"]) if isinstance(value, int | float) else None
    text = "" if value is None else str(value).strip()
    return text or UNKNOWN


# --- the review console's protocol editor (issue 16) ---------------------------------------------


def protocols_for_console(user) -> QuerySet[Protocol]:
    """Every protocol the user may name, by name then newest version first, with the people
    the list shows."""
    return (
        protocols_visible_to(user)
        .select_related("created_by", "locked_by")
        .order_by("name", "-version")
    )


def protocol_previous(protocol: Protocol) -> Protocol | None:
    """The version of the same protocol just before this one (None for a first version)."""
    return (
        Protocol.objects.filter(name=protocol.name, version__lt=protocol.version)
        .order_by("-version")
        .first()
    )


def protocol_versions(protocol: Protocol) -> QuerySet[Protocol]:
    """Every version of this protocol's name, newest first."""
    return Protocol.objects.filter(name=protocol.name).order_by("-version")


def protocol_latest(name: str) -> Protocol | None:
    """The newest version of the protocol of this name: the one protocol_create would follow."""
    return Protocol.objects.filter(name=name).order_by("-version").first()


# --- the review console's work screens (issue 16) -------------------------------------------------


def dataset_version_training_overlap(
    version: DatasetVersion, *, sites: list[str], scanners: list[str]
) -> dict[str, Any]:
    """How many of the version's cases come from a site or a scanner (manufacturer) the vendor
    declared for training: the count, the total and the share. Compared case-insensitively on
    the cases' `site` (or `institution`) and `manufacturer` attributes."""
    wanted_sites = {str(s).strip().casefold() for s in sites if str(s).strip()}
    wanted_scanners = {str(s).strip().casefold() for s in scanners if str(s).strip()}
    total = count = 0
    for attributes in version.cases.values_list("attributes", flat=True):
        total += 1
        site = str(attributes.get("site") or attributes.get("institution") or "").casefold()
        scanner = str(attributes.get("manufacturer") or "").casefold()
        if (site and site in wanted_sites) or (scanner and scanner in wanted_scanners):
            count += 1
    return {"count": count, "total": total, "share": count / total if total else 0.0}


def packages_awaiting_review() -> QuerySet[ModelPackage]:
    """Packages that passed their smoke test and wait for a reviewer, oldest first."""
    return (
        ModelPackage.objects.filter(status=ModelPackage.Status.SUBMITTED)
        .select_related("vendor")
        .order_by("submitted_at", "id")
    )


def package_smoke_record(package: ModelPackage) -> dict[str, Any]:
    """What the smoke test recorded when it passed the package (the PACKAGE_SUBMITTED event's
    payload: timings and the isolation it ran under); empty before or without one."""
    event = (
        AuditEvent.objects.filter(
            action=AuditAction.PACKAGE_SUBMITTED,
            target_type=ModelPackage._meta.label,
            target_id=str(package.pk),
        )
        .order_by("-id")
        .values_list("payload", flat=True)
        .first()
    )
    return (event or {}).get("smoke") or {}


def runs_failed() -> QuerySet[ValidationRun]:
    """Failed runs, the latest first."""
    return (
        ValidationRun.objects.filter(status=ValidationRun.Status.FAILED)
        .select_related("package__vendor", "dataset_version__dataset")
        .order_by("-finished_at", "-id")
    )


def runs_stalled(now=None) -> list[ValidationRun]:
    """Running runs that have made no visible progress for WORKER_STALE_S: no shard started or
    finished since, and no unfinished shard held by a worker whose heartbeat is fresh (a
    worker presumed dead). Each carries `last_activity`, when it last moved."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.WORKER_STALE_S)
    alive = set(
        WorkerPresence.objects.filter(heartbeat_at__gte=since).values_list("hostname", flat=True)
    )
    running = (
        ValidationRun.objects.filter(status=ValidationRun.Status.RUNNING)
        .select_related("package__vendor", "dataset_version__dataset")
        .prefetch_related("shards")
        .order_by("id")
    )
    stalled = []
    for run in running:
        shards = list(run.shards.all())
        moments = [run.started_at or run.queued_at]
        moments += [m for s in shards for m in (s.started_at, s.finished_at) if m]
        last = max(moments)
        held_alive = any(
            s.status == s.Status.RUNNING and s.worker in alive for s in shards if s.worker
        )
        if last < since and not held_alive:
            run.last_activity = last  # type: ignore[attr-defined]
            stalled.append(run)
    return stalled


def runs_with_failing_cases() -> QuerySet[ValidationRun]:
    """Runs (not cancelled) with cases the model could not score, each annotated with
    `n_failing`, the most failing first."""
    return (
        ValidationRun.objects.exclude(status=ValidationRun.Status.CANCELLED)
        .annotate(n_failing=Count("predictions", filter=~Q(predictions__error_category="")))
        .filter(n_failing__gt=0)
        .select_related("package__vendor", "dataset_version__dataset")
        .order_by("-n_failing", "-id")
    )


def run_failures_by_category(run: ValidationRun) -> list[dict[str, Any]]:
    """The run's cases that failed, counted by failure category, largest first (aggregates:
    which cases failed is case-level data, on the case table)."""
    rows = (
        Prediction.objects.filter(run=run)
        .exclude(error_category="")
        .values("error_category")
        .annotate(n=Count("id"))
        .order_by("-n", "error_category")
    )
    return [{"category": row["error_category"], "count": row["n"]} for row in rows]


def runs_listed(user, *, status: str = "") -> QuerySet[ValidationRun]:
    """The runs this user may see, newest first, optionally in one state."""
    qs = runs_visible_to(user).order_by("-queued_at", "-id")
    return qs.filter(status=status) if status else qs


def launchable_packages() -> QuerySet[ModelPackage]:
    """Approved packages, by vendor, name and version: what a run may validate."""
    return (
        ModelPackage.objects.filter(status=ModelPackage.Status.APPROVED)
        .select_related("vendor")
        .order_by("vendor__name", "name", "-id")
    )


def launchable_versions() -> QuerySet[DatasetVersion]:
    """Sealed dataset versions with their case counts: what a run may use."""
    return (
        DatasetVersion.objects.filter(status=DatasetVersion.Status.SEALED)
        .select_related("dataset__partner")
        .annotate(n_cases=Count("cases"))
        .order_by("dataset__partner__name", "dataset__name", "version")
    )


def comparisons_listed(user, *, status: str = "") -> QuerySet[ComparisonRun]:
    """The comparison runs this user may see, newest first, optionally in one state."""
    qs = comparisons_visible_to(user).order_by("-created_at", "-id")
    return qs.filter(status=status) if status else qs


def comparison_candidates() -> QuerySet[ModelPackage]:
    """Approved packages that succeed another version (their manifest's `supersedes`): what a
    comparison may take as its candidate."""
    return launchable_packages().filter(supersedes__isnull=False)


def package_predecessors(package: ModelPackage) -> list[ModelPackage]:
    """The versions `package` 's lineage reaches, newest first (its predecessor first)."""
    chain: list[ModelPackage] = []
    seen = {package.pk}
    earlier = package.supersedes
    while earlier is not None and earlier.pk not in seen:
        chain.append(earlier)
        seen.add(earlier.pk)
        earlier = earlier.supersedes
    return chain


def comparison_protocols() -> QuerySet[Protocol]:
    """Locked protocols that pre-register a comparison (their `comparison` block)."""
    return locked_protocols().filter(document__has_key="comparison")
