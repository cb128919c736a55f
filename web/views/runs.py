"""The vendor's runs: the list with each run's typical duration, a run's page with its stage
stepper live until a final state, its aggregate results, and the report's own figures."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from validation import selectors
from validation.api.serializers import RunSerializer, aggregate_results
from validation.models import ValidationRun
from web import figures
from web.access import vendor_required
from web.views.flow import live, page_of

Status = ValidationRun.Status

BADGES = {
    Status.QUEUED: ("badge--neutral", "Queued"),
    Status.RUNNING: ("badge--info", "Running"),
    Status.SCORING: ("badge--info", "Scoring"),
    Status.EXPLAINING: ("badge--info", "Explaining"),
    Status.REPORTING: ("badge--info", "Reporting"),
    Status.AWAITING_SIGNATURE: ("badge--warn", "Awaiting signature"),
    Status.ISSUED: ("badge--ok", "Issued"),
    Status.FAILED: ("badge--bad", "Failed"),
    Status.CANCELLED: ("badge--neutral", "Cancelled"),
}
STAGES = [
    (Status.QUEUED, "Queued", None),
    (Status.RUNNING, "Running", "inference"),
    (Status.SCORING, "Scoring", "scoring"),
    (Status.EXPLAINING, "Explaining", "explaining"),
    (Status.REPORTING, "Reporting", "reporting"),
    (Status.AWAITING_SIGNATURE, "Awaiting signature", None),
    (Status.ISSUED, "Issued", None),
]
#: Results exist from here on (scoring stored them).
SCORED = {Status.EXPLAINING, Status.REPORTING, Status.AWAITING_SIGNATURE, Status.ISSUED}
PLOTS = figures.PLOTS


def run_badge(status: str) -> dict[str, str]:
    css, words = BADGES.get(status, ("badge--neutral", status))  # type: ignore[call-overload]
    return {"css": css, "words": words}


def _stopped_at(run: ValidationRun) -> int:
    """The index of the stage a failed or cancelled run stopped in: the first whose work it
    had not recorded."""
    if run.started_at is None:
        return 0
    for index, (_status, _label, key) in enumerate(STAGES[1:5], start=1):
        if key not in (run.stage_seconds or {}):
            return index
    return 5


def stepper(run: ValidationRun) -> list[dict[str, str]]:
    """Each stage with its state: done, current, failed (where a failed or cancelled run
    stopped) or to come."""
    if run.status in (Status.FAILED, Status.CANCELLED):
        stop, stopped = _stopped_at(run), True
    else:
        stop = next(i for i, (status, _l, _k) in enumerate(STAGES) if status == run.status)
        stopped = False
    steps = []
    for index, (_status, label, _key) in enumerate(STAGES):
        if index < stop or (index == stop and run.status == Status.ISSUED):
            state = "done"
        elif index == stop:
            state = "failed" if stopped else "current"
        else:
            state = "todo"
        steps.append({"label": label, "state": state})
    return steps


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _typical_text(typical: dict) -> str:
    if typical["seconds"] is None:
        return "No similar run yet"
    runs = "run" if typical["based_on"] == 1 else "runs"
    return f"About {_duration(typical['seconds'])} (median of {typical['based_on']} similar {runs})"


@vendor_required
def run_list(request: HttpRequest) -> HttpResponse:
    runs = selectors.runs_visible_to(request.user).order_by("-queued_at", "-id")
    page = page_of(request, runs)
    typical = selectors.runs_typical_durations(list(page.object_list))
    rows = [
        {
            "run": run,
            "badge": run_badge(run.status),
            "typical": _typical_text(typical[run.pk]),
            "percent": round(100 * run.cases_done / run.cases_total) if run.cases_total else 0,
        }
        for run in page.object_list
    ]
    return render(
        request,
        "web/runs/list.html",
        {"title": "Runs", "section": "runs", "page_obj": page, "rows": rows},
    )


def _results(request: HttpRequest, run: ValidationRun) -> dict | None:
    """The aggregate results exactly as the API gives this user (None before scoring)."""
    sections = selectors.run_results(run)
    if not sections:
        return None
    audience = selectors.run_audience(user=request.user, run=run)
    min_cell = int(run.protocol.document["min_cell_size"])
    return aggregate_results(sections, audience=audience, min_cell=min_cell)


def _run_context(request: HttpRequest, run: ValidationRun) -> dict:
    shown = RunSerializer(run).data  # exactly what the API shows a vendor
    final = run.status in ValidationRun.TERMINAL
    progress = shown["progress"]
    return {
        "run": run,
        "shown": shown,
        "badge": run_badge(run.status),
        "steps": stepper(run),
        "final": final,
        "scored": run.status in SCORED,
        "cases_done": progress["cases_done"],
        "cases_total": progress["cases_total"],
        "typical": _typical_text(selectors.run_typical_duration(run)),
        "elapsed": _duration(
            ((run.finished_at or run.queued_at) - run.queued_at).total_seconds()
            if run.finished_at
            else None
        ),
    }


@vendor_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.run_get_visible(user=request.user, pk=pk)
    context = {"title": f"Run {run.pk}", "section": "runs", **_run_context(request, run)}
    return render(request, "web/runs/detail.html", context)


@vendor_required
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The live fragment: stepper and cases; 286 (stop polling) at a final state."""
    run = selectors.run_get_visible(user=request.user, pk=pk)
    context = _run_context(request, run)
    return live(request, "web/runs/detail.html#progress", context, final=context["final"])


def _criteria(results: dict) -> list[dict]:
    """Each acceptance criterion with the metric's point estimate and interval beside it."""
    primary = results.get("primary") or {}
    rows = []
    for criterion in (results.get("acceptance") or {}).get("criteria", []):
        interval = primary.get(criterion.get("metric"))
        rows.append({**criterion, "interval": interval if isinstance(interval, dict) else None})
    return rows


@vendor_required
def run_results(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.run_get_visible(user=request.user, pk=pk)
    results = _results(request, run)
    context: dict = {
        "title": f"Run {run.pk}: results",
        "section": "runs",
        "run": run,
        "badge": run_badge(run.status),
        "results": results,
    }
    if results is not None:
        context.update(
            criteria=_criteria(results),
            verdict=(results.get("acceptance") or {}).get("verdict"),
            subgroups=results["subgroups"],
            failures=results["failures"],
            calibration=results["calibration"],
            independence=results.get("independence"),
            min_cell=int(run.protocol.document["min_cell_size"]),
            plots=figures.drawable(results),
        )
    return render(request, "web/runs/results.html", context, status=200)


@vendor_required
def run_plot(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    """One figure as image/svg+xml (an <img>: inline SVG would need a looser CSP)."""
    if name not in PLOTS:
        raise Http404("No such figure.")
    run = selectors.run_get_visible(user=request.user, pk=pk)
    results = _results(request, run)
    return figures.figure_response(request, results, name)
