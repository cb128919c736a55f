"""The console's signing page: a report shown as page images, its signatures so far and whose
turn it is (the review, then the QA approval), the Part 11 signature form (meaning fixed by
the signer's role, printed name, date and time, password re-entered), the status live until
the report is issued, and a correction of an issued report. Writes through reports.services,
the same services as reports/api.py, so the same audit events and the same refusals."""

from django import forms
from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from reports.models import Report, Signature
from reports.page_images import PageImageError, report_page_images_made
from reports.selectors import report_get_visible, report_successor
from reports.services import (
    MEANING_ROLES,
    report_correct,
    report_pages_request,
    report_pages_viewed,
    report_sign,
    signatures_missing,
)
from validation.errors import ApplicationError
from validation.models import Role
from web.access import ROLE_LABELS, role_required, roles
from web.views.flow import HtmxRequest, form_failed, live, succeeded
from web.views.reports import STATUS_BADGES

team_or_auditor = role_required(Role.REVIEWER, Role.QA_APPROVER, Role.AUDITOR)
team_only = role_required(Role.REVIEWER, Role.QA_APPROVER)

# What each signature means (21 CFR 11.50(a)(3)): printed with the form and the signatures.
MEANING_WORDS = {
    Signature.Meaning.REVIEWED: "Reviewed: I have reviewed this report and it is a true account "
    "of the validation run.",
    Signature.Meaning.APPROVED: "Approved: as QA approver I approve this reviewed report for "
    "issue.",
}


class SignForm(forms.Form):
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Re-entered for each signature (21 CFR 11.200).",
    )


class CorrectForm(forms.Form):
    reason = forms.CharField(
        label="Reason for the correction",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Printed in the new version, which is signed and issued like any report.",
    )


def _badge(report: Report) -> tuple[str, str]:
    return STATUS_BADGES.get(Report.Status(report.status), (report.status, "neutral"))


def _printed_name(user) -> str:
    """The name a signature prints (as reports.services records it)."""
    return user.get_full_name() or user.get_username()


def _meaning_for(request: HtmxRequest, missing: list[str]) -> str | None:
    """The meaning this person signs with: the first missing one their role gives, else the
    one their role gives at all (the service then says why not)."""
    held = roles(request)
    for meaning in [*missing, *MEANING_ROLES]:
        if MEANING_ROLES[meaning] in held:
            return meaning
    return None


def _sign_context(request: HtmxRequest, report: Report) -> dict:
    signatures = list(report.signatures.select_related("signer").order_by("id"))
    given = {s.meaning for s in signatures}
    missing = signatures_missing(report.required_signatures, given)
    held = roles(request)
    acts = bool(held & {Role.REVIEWER, Role.QA_APPROVER})
    mine = next((s for s in signatures if s.signer_id == request.user.pk), None)
    awaiting = report.status == Report.Status.AWAITING_SIGNATURE
    turn = missing[0] if missing else None
    turn_role = MEANING_ROLES[turn] if turn else ""
    may_sign = awaiting and acts and mine is None and turn_role in held
    blocked = ""
    if awaiting and turn and not may_sign:
        if not acts:
            blocked = "Auditors read the record; they do not sign."
        elif mine is not None:
            blocked = (
                f"You signed this report as {mine.meaning}. The {turn} signature must come "
                f"from a different person: one person cannot give two signatures on a report."
            )
        else:
            blocked = (
                f"It is the {ROLE_LABELS.get(Role(turn_role))}'s turn: the {turn} signature comes "
                f"first. Yours follows it."
            )
    successor = report_successor(report) if report.issued_at else None
    return {
        "report": report,
        "badge": _badge(report),
        "signatures": [(s, ROLE_LABELS.get(Role(s.role), s.role)) for s in signatures],
        "meaning_words": MEANING_WORDS,
        "missing": missing,
        "turn": turn,
        "turn_role": ROLE_LABELS[Role(turn_role)] if turn_role else "",
        "may_sign": may_sign,
        "blocked": blocked,
        "final": report.status == Report.Status.ISSUED,
        "printed_name": _printed_name(request.user),
        "now": timezone.now(),
        "may_correct": bool(acts and report.status == Report.Status.ISSUED and successor is None),
        "successor": successor,
    }


def _page_context(request: HtmxRequest, report: Report) -> dict:
    context = {
        "title": f"Sign {report.reference} version {report.version}",
        "section": "console-sign",
        **_sign_context(request, report),
    }
    return {**context, **_pages_context(report)}


def _pages_context(report: Report) -> dict:
    """The page images if made; else `pages_pending` (a reports worker makes them: a draft
    takes seconds to render, which no page request waits for)."""
    try:
        made = report_pages_request(report=report)
    except PageImageError as exc:
        return {"pages": [], "pages_problem": str(exc)}
    if made is None:
        return {"pages": [], "pages_pending": True}
    return {"pages": range(1, len(made) + 1)}


@team_or_auditor
@require_GET
def report_sign_page(request: HtmxRequest, pk: int) -> HttpResponse:
    report = report_get_visible(user=request.user, pk=pk)
    context = _page_context(request, report)
    context["form"] = SignForm()
    context["correct_form"] = CorrectForm()
    if context["pages"]:
        report_pages_viewed(actor=request.user, report=report)
    return render(request, "web/console/sign/sign.html", context)


@team_or_auditor
@require_GET
def report_sign_status(request: HtmxRequest, pk: int) -> HttpResponse:
    """The live status fragment: polled until the report is issued, then 286 (stop)."""
    report = report_get_visible(user=request.user, pk=pk)
    context = _sign_context(request, report)
    return live(request, "web/console/sign/sign.html#status", context, final=context["final"])


@team_only
@require_POST
def report_sign_submit(request: HtmxRequest, pk: int) -> HttpResponse:
    report = report_get_visible(user=request.user, pk=pk)
    form = SignForm(request.POST)
    here = reverse("web:console-report-sign", args=[report.pk])
    if form.is_valid():
        context = _sign_context(request, report)
        meaning = _meaning_for(request, context["missing"])
        try:
            if meaning is None:
                raise ApplicationError("Your role gives no signature on a report.")
            report_sign(
                actor=request.user,
                report=report,
                password=form.cleaned_data["password"],
                meaning=meaning,
            )
        except ApplicationError as exc:
            form_failed(form, exc)
        else:
            messages.success(request, f"Signed: {meaning}. The signature is in the record.")
            return succeeded(request, here)
    return _form_failed(request, report, form, "sign-form", sign_form=True)


@team_only
@require_POST
def report_correct_submit(request: HtmxRequest, pk: int) -> HttpResponse:
    report = report_get_visible(user=request.user, pk=pk)
    form = CorrectForm(request.POST)
    if form.is_valid():
        try:
            correction = report_correct(
                actor=request.user, report=report, reason=form.cleaned_data["reason"]
            )
        except ApplicationError as exc:
            form_failed(form, exc)
        else:
            messages.success(
                request,
                f"Version {correction.version} drafted; it is signed and issued like any report.",
            )
            return succeeded(request, reverse("web:console-report-sign", args=[correction.pk]))
    return _form_failed(request, report, form, "correct-form", sign_form=False)


def _form_failed(
    request: HtmxRequest, report: Report, form: forms.Form, partial: str, *, sign_form: bool
) -> HttpResponse:
    """The form with its problems: the fragment (422) for htmx, else the whole page (400)."""
    if request.htmx:
        context = _sign_context(request, report)
    else:
        context = _page_context(request, report)
    context["form"] = form if sign_form else SignForm()
    context["correct_form"] = CorrectForm() if sign_form else form
    if request.htmx:
        return render(request, f"web/console/sign/sign.html#{partial}", context, status=422)
    return render(request, "web/console/sign/sign.html", context, status=400)


@team_or_auditor
@require_GET
def report_pages_fragment(request: HtmxRequest, pk: int) -> HttpResponse:
    """The page images' panel, polled while a worker makes them; 286 (stop) once they are
    there or have failed."""
    report = report_get_visible(user=request.user, pk=pk)
    context = {"report": report, **_pages_context(report)}
    if context["pages"]:
        report_pages_viewed(actor=request.user, report=report)
    return render(
        request,
        "web/console/sign/sign.html#pages",
        context,
        status=200 if context.get("pages_pending") else 286,
    )


@team_or_auditor
@require_GET
def report_page_image(request: HtmxRequest, pk: int, number: int) -> FileResponse:
    """One page of the report as PNG (the team and auditors only; never a public file)."""
    report = report_get_visible(user=request.user, pk=pk)
    try:
        pages = report_page_images_made(report)
    except PageImageError as exc:
        raise Http404(str(exc)) from exc
    if not 1 <= number <= len(pages):
        raise Http404("The report has no such page.")
    response = FileResponse(open(pages[number - 1], "rb"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response
