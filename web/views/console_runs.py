"""The review console's runs: the launcher (package x sealed dataset version x locked protocol,
with `run_preflight`'s checks shown before anything starts and an explicit confirmation), and
the monitor (the list with a state filter; a run's stage, shards, failures by category and
cancel, live until a final state)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from validation import selectors
from validation.api.serializers import RunTeamSerializer
from validation.errors import ApplicationError
from validation.models import ValidationRun
from validation.services.runs import run_cancel, run_preflight, run_start
from web.views.console_packages import can_act, team_acts
from web.views.console_queue import team_or_auditor
from web.views.flow import HtmxRequest, live, page_of, refusal_of, refused, state_filter
from web.views.runs import BADGES, SCORED, run_badge, stepper

Status = ValidationRun.Status
STATUS_CHOICES = [("", "Every state"), *((s.value, BADGES[s][1]) for s in Status)]
CONFIRMATION = (
    "I have checked the package, the dataset version, the protocol and the checks above, "
    "and I start this run."
)


# --- the launcher ---------------------------------------------------------------------------


def _chosen(request: HttpRequest, data) -> dict:
    """The package, version and protocol named in `data` (None where unnamed or not
    launchable): only approved packages, sealed versions and locked protocols are offered."""

    def pick(queryset, key):
        value = data.get(key, "")
        if not str(value).isdigit():
            return None
        return queryset.filter(pk=int(value)).first()

    return {
        "package": pick(selectors.launchable_packages(), "package"),
        "dataset_version": pick(selectors.launchable_versions(), "dataset_version"),
        "protocol": pick(selectors.locked_protocols(), "protocol"),
    }


def _preflight_context(chosen: dict) -> dict:
    if not all(chosen.values()):
        return {"checks": None, "ready": False}
    checks = run_preflight(**chosen)
    rows = [
        {
            "check": c,
            "css": "badge--ok" if c.ok else ("badge--bad" if c.blocking else "badge--warn"),
            "words": "Passed" if c.ok else ("Blocks the run" if c.blocking else "Warning"),
        }
        for c in checks
    ]
    return {"checks": rows, "ready": all(c.ok or not c.blocking for c in checks)}


def _launcher_context(request: HttpRequest, data) -> dict:
    chosen = _chosen(request, data)
    return {
        "title": "Launch a run",
        "section": "console-runs",
        "packages": selectors.launchable_packages(),
        "versions": selectors.launchable_versions(),
        "protocols": selectors.locked_protocols(),
        "chosen": chosen,
        "confirmation": CONFIRMATION,
        "can_launch": can_act(request),
        **_preflight_context(chosen),
    }


@team_or_auditor
def run_new(request: HtmxRequest) -> HttpResponse:
    """GET: the form (auditors: the choices and checks, no button). POST (the team): with the
    confirmation ticked, `run_start`; its refusals one per line (422 to htmx, 400 otherwise);
    success -> the run's monitor page."""
    if request.method != "POST":
        context = _launcher_context(request, request.GET)
        return render(request, "web/console/work/launcher.html", context)
    return _run_launch(request)


@team_acts
def _run_launch(request: HtmxRequest) -> HttpResponse:
    context = _launcher_context(request, request.POST)
    chosen = context["chosen"]
    problems = [
        f"Choose {words}."
        for key, words in (
            ("package", "an approved package"),
            ("dataset_version", "a sealed dataset version"),
            ("protocol", "a locked protocol"),
        )
        if chosen[key] is None
    ]
    if not problems and request.POST.get("confirm") != "yes":
        problems.append("Tick the confirmation: nothing starts without it.")
    refusal = None
    if problems:
        refusal = {"message": "The run was not started.", "errors": problems}
    else:
        try:
            run = run_start(actor=request.user, **chosen)
        except ApplicationError as exc:
            refusal = refusal_of(exc)
        else:
            target = reverse("web:console-run", args=[run.pk])
            if request.htmx:
                return HttpResponseClientRedirect(target)
            return redirect(target, permanent=False)
    context["refusal"] = refusal
    return refused(request, "web/console/work/launcher.html", "form", context)


@team_or_auditor
def run_new_preflight(request: HttpRequest) -> HttpResponse:
    """The pre-flight fragment, refreshed whenever a choice changes."""
    context = _launcher_context(request, request.GET)
    return render(request, "web/console/work/launcher.html#preflight", context)


# --- the monitor ----------------------------------------------------------------------------


@team_or_auditor
def run_list(request: HttpRequest) -> HttpResponse:
    chosen = state_filter(request, Status.values, STATUS_CHOICES)
    status = chosen["status"]
    runs = selectors.runs_listed(request.user, status=status)
    page = page_of(request, runs)
    return render(
        request,
        "web/console/work/runs.html",
        {
            "title": "Runs",
            "section": "console-runs",
            "page_obj": page,
            "rows": [{"run": r, "badge": run_badge(r.status)} for r in page.object_list],
            **chosen,
            "can_launch": can_act(request),
        },
    )


def results_url(run: ValidationRun) -> str:
    """The console's results page (another screen of the console)."""
    return reverse("web:console-run-results", args=[run.pk])


def _run_context(request: HttpRequest, run: ValidationRun) -> dict:
    shown = RunTeamSerializer(run).data
    final = run.status in ValidationRun.TERMINAL
    return {
        "run": run,
        "shown": shown,
        "execution": shown["execution"],
        "badge": run_badge(run.status),
        "steps": stepper(run),
        "final": final,
        "scored": run.status in SCORED,
        "results_url": results_url(run),
        "failures": selectors.run_failures_by_category(run),
        "can_cancel": can_act(request) and not final and run.status != Status.AWAITING_SIGNATURE,
    }


@team_or_auditor
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.run_get_visible(user=request.user, pk=pk)
    context = {"title": f"Run {run.pk}", "section": "console-runs", **_run_context(request, run)}
    return render(request, "web/console/work/run.html", context)


@team_or_auditor
def run_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the monitor; 286 (stop polling) once the run is final."""
    run = selectors.run_get_visible(user=request.user, pk=pk)
    context = _run_context(request, run)
    return live(request, "web/console/work/run.html#live", context, final=context["final"])


@team_acts
def run_stop(request: HtmxRequest, pk: int) -> HttpResponse:
    """POST (with the confirmation ticked): `run_cancel`. Refusals on the run's page."""
    run = selectors.run_get_visible(user=request.user, pk=pk)
    target = reverse("web:console-run", args=[run.pk])
    if request.method != "POST":
        return redirect(target)
    refusal = None
    if request.POST.get("confirm") != "yes":
        refusal = {"message": "Tick the confirmation to cancel the run.", "errors": []}
    else:
        try:
            run_cancel(actor=request.user, run=run)
        except ApplicationError as exc:
            refusal = refusal_of(exc)
    if refusal is None:
        if request.htmx:
            return HttpResponseClientRedirect(target)
        return redirect(target, permanent=False)
    run.refresh_from_db()
    context = {
        "title": f"Run {run.pk}",
        "section": "console-runs",
        **_run_context(request, run),
        "refusal": refusal,
    }
    return refused(request, "web/console/work/run.html", "cancel", context)
