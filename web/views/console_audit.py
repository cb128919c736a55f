"""The console's audit trail: the record filtered by actor, action, target and time, newest
first, with the chain's verification status, and the same selection as CSV. The validation
team and auditors read it; nothing here writes."""

import json

from django import forms
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit.models import AuditAction
from audit.selectors import audit_chain_status, audit_events_filtered, audit_target_types
from validation.models import Role
from web.access import role_required
from web.csv_export import csv_response
from web.views.flow import page_of

team_or_auditor = role_required(Role.REVIEWER, Role.QA_APPROVER, Role.AUDITOR)


class AuditFilterForm(forms.Form):
    actor = forms.CharField(
        required=False, max_length=200, label="Actor", help_text="Username or part of a name."
    )
    action = forms.ChoiceField(required=False, label="Action")
    target_type = forms.ChoiceField(required=False, label="Target type")
    target_id = forms.CharField(required=False, max_length=64, label="Target id")
    since = forms.DateTimeField(
        required=False,
        label="From",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = forms.DateTimeField(
        required=False,
        label="Until",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [("", "Any action"), *AuditAction.choices]  # type: ignore[attr-defined]
        self.fields["target_type"].choices = [  # type: ignore[attr-defined]
            ("", "Any target"),
            *((t, t) for t in audit_target_types()),
        ]

    def clean(self):
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until <= since:
            self.add_error("until", "The end of the range comes after its start.")
        return cleaned


def _selection(request: HttpRequest):
    """The filter form (bound to the query string) and the events it selects; an invalid
    filter selects nothing rather than everything."""
    form = AuditFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return form, audit_events_filtered().none()
    filters = form.cleaned_data if form.is_bound else {}
    return form, audit_events_filtered(**{k: v for k, v in filters.items() if v})


def _query(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    params.pop("verify", None)
    return params.urlencode()


@team_or_auditor
def audit_trail(request: HttpRequest) -> HttpResponse:
    form, events = _selection(request)
    page = page_of(request, events)
    chain = audit_chain_status(fresh=request.GET.get("verify") == "now")
    rows = [
        {"event": e, "payload": json.dumps(e.payload, indent=2, sort_keys=True, ensure_ascii=False)}
        for e in page.object_list
    ]
    context = {
        "title": "Audit trail",
        "section": "console-audit",
        "form": form,
        "page_obj": page,
        "rows": rows,
        "query": _query(request),
        "chain": chain,
        "now": timezone.now(),
    }
    return render(
        request, "web/console/audit/trail.html", context, status=400 if form.errors else 200
    )


CSV_COLUMNS = [
    "id",
    "at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "payload",
    "payload_sha256",
    "prev_hash",
    "hash",
]


@team_or_auditor
def audit_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    form, events = _selection(request)
    if form.errors:
        return render(
            request,
            "web/console/audit/trail.html",
            {
                "title": "Audit trail",
                "section": "console-audit",
                "form": form,
                "page_obj": page_of(request, events),
                "rows": [],
                "query": _query(request),
                "chain": audit_chain_status(),
            },
            status=400,
        )

    def rows():
        for e in events.iterator(chunk_size=2000):
            yield [
                e.pk,
                e.at.isoformat(),
                e.actor_label,
                e.action,
                e.target_type,
                e.target_id,
                json.dumps(e.payload, sort_keys=True, ensure_ascii=False),
                e.payload_sha256,
                e.prev_hash,
                e.hash,
            ]

    return csv_response(f"audit-{timezone.now():%Y%m%d-%H%M%S}.csv", CSV_COLUMNS, rows())
