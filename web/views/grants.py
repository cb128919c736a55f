"""The partner's grants (create, revoke with a reason) and the usage log of their datasets, on
the page and as CSV. Writes through validation/services/datasets.py like the API; the usage
rows carry what the API's usage log carries (validation/api/datasets.py usage_row)."""

from django import forms
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from validation import selectors
from validation.errors import ApplicationError
from validation.services.datasets import REVOKE_REASON_MAX, dataset_grant, dataset_grant_revoke
from web.access import steward_required
from web.csv_export import csv_response
from web.views.flow import HtmxRequest, form_failed, page_of, refused, succeeded

ANY = "any"


class VersionChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"{obj.dataset.name} v{obj.version} ({obj.dataset.partner.name})"


class GrantForm(forms.Form):
    vendor: forms.ModelChoiceField = forms.ModelChoiceField(
        queryset=None,
        label="Vendor",
        empty_label="Choose a vendor",
    )
    dataset_version: forms.ModelChoiceField = VersionChoice(
        queryset=None,
        label="Dataset version",
        empty_label="Choose a sealed version",
    )
    protocol = forms.ChoiceField(label="Protocol", help_text="A locked protocol, or any.")
    max_runs = forms.IntegerField(
        required=False,
        min_value=1,
        label="Run cap",
        help_text="Runs this vendor may make on the version; leave empty for no cap.",
    )
    allow_exemplars = forms.BooleanField(
        required=False,
        label="Exemplar images allowed",
        help_text="Reports may show a few of this version's images as explanation examples.",
    )

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["vendor"].queryset = selectors.grantable_vendors()  # type: ignore[attr-defined]
        self.fields["dataset_version"].queryset = selectors.grantable_versions(user)  # type: ignore[attr-defined]
        self.protocols = {str(p.pk): p for p in selectors.locked_protocols()}
        self.fields["protocol"].choices = [(ANY, "Any protocol")] + [  # type: ignore[attr-defined]
            (pk, str(p)) for pk, p in self.protocols.items()
        ]


class RevokeForm(forms.Form):
    reason = forms.CharField(
        max_length=REVOKE_REASON_MAX,
        label="Reason",
        help_text="Recorded in the audit record with the revocation.",
    )


@steward_required
def grant_list(request: HtmxRequest) -> HttpResponse:
    page = page_of(request, selectors.grants_visible_to(request.user))
    grants = list(page.object_list)
    used = selectors.runs_used_by_grant(grants)
    reasons = selectors.grant_revocation_reasons(grants)
    rows = [{"grant": g, "used": used[g.pk], "reason": reasons.get(g.pk, "")} for g in grants]
    context = {
        "title": "Grants",
        "section": "grants",
        "page_obj": page,
        "rows": rows,
        "revoke_form": RevokeForm(),
    }
    return render(request, "web/grants/list.html", context)


@steward_required
def grant_new(request: HtmxRequest) -> HttpResponse:
    form = GrantForm(request.POST if request.method == "POST" else None, user=request.user)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                dataset_grant(
                    actor=request.user,
                    dataset_version=data["dataset_version"],
                    vendor=data["vendor"],
                    protocol=form.protocols.get(data["protocol"]),
                    allow_exemplars=data["allow_exemplars"],
                    max_runs=data["max_runs"],
                )
            except ApplicationError as exc:
                form_failed(form, exc)
            else:
                return succeeded(request, reverse("web:grants"))
        if request.htmx:
            return render(request, "web/grants/new.html#grant-form", {"form": form}, status=422)
    context = {"title": "Grant a dataset version", "section": "grants", "form": form}
    return render(request, "web/grants/new.html", context, status=400 if form.errors else 200)


@require_POST
@steward_required
def grant_revoke(request: HtmxRequest, pk: int) -> HttpResponse:
    grant = selectors.grant_get_visible(user=request.user, pk=pk)
    form = RevokeForm(request.POST)
    if form.is_valid():
        try:
            dataset_grant_revoke(
                actor=request.user, grant=grant, reason=form.cleaned_data["reason"]
            )
        except ApplicationError as exc:
            form_failed(form, exc)
        else:
            return succeeded(request, reverse("web:grants"))
    context = {"title": "Revoke a grant", "section": "grants", "grant": grant, "form": form}
    return refused(request, "web/grants/revoke.html", "revoke-form", context)


def _usage_filter(request: HtmxRequest):
    """The dataset filter (?dataset=<id>, one of the steward's), and the runs it selects."""
    datasets = selectors.datasets_visible_to(request.user).filter(
        partner_id__in=selectors.org_ids_of(request.user, "partner_steward")
    )
    chosen = None
    wanted = request.GET.get("dataset", "")
    if wanted:
        chosen = selectors.dataset_get_visible(user=request.user, pk=wanted)
    return datasets, chosen, selectors.usage_visible_to(request.user, dataset=chosen)


@steward_required
def usage(request: HtmxRequest) -> HttpResponse:
    datasets, chosen, runs = _usage_filter(request)
    context = {
        "title": "Usage log",
        "section": "usage",
        "datasets": datasets,
        "chosen": chosen,
        "page_obj": page_of(request, runs),
        "query": f"dataset={chosen.pk}" if chosen else "",
    }
    return render(request, "web/grants/usage.html", context)


USAGE_COLUMNS = [
    "run",
    "dataset",
    "dataset_version",
    "requested_by",
    "vendor",
    "package",
    "package_sha256",
    "protocol",
    "queued_at",
    "finished_at",
    "status",
    "cases",
]


@steward_required
def usage_csv(request: HtmxRequest) -> StreamingHttpResponse:
    _datasets, chosen, runs = _usage_filter(request)

    def rows():
        for run in runs.iterator(chunk_size=500):
            yield [
                run.pk,
                run.dataset_version.dataset.name,
                run.dataset_version.version,
                run.requested_by.get_username(),
                run.package.vendor.name,
                f"{run.package.name} {run.package.version}",
                run.package.sha256,
                str(run.protocol),
                run.queued_at.isoformat(),
                run.finished_at.isoformat() if run.finished_at else "",
                run.status,
                run.cases_total,
            ]

    name = f"usage-{chosen.pk if chosen else 'all'}-{timezone.now():%Y%m%d}.csv"
    return csv_response(name, USAGE_COLUMNS, rows())
