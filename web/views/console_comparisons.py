"""The review console's comparison runs (issue 18 item 13). The launcher ("Compare versions"):
the candidate package, its baseline (its predecessor by default, or any version its lineage
reaches), a sealed dataset version and a locked protocol that pre-registers the comparison;
before anything starts it shows the pre-registered endpoints and margins and `run_preflight`'s
checks for both runs, and `comparison_start` refuses on the form. The list, and a comparison's
page: both runs' states, live until the comparison is scored or fails, then the paired result
and a link to the comparison report's signing page. The team acts, auditors read."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from reports.comparison_prose import margin_text
from reports.template_filters import ci_range, metric_name, num3, pvalue, verdict
from validation import selectors
from validation.errors import ApplicationError
from validation.models import ComparisonRun
from validation.services.comparisons import comparison_start
from validation.services.runs import run_preflight
from web.views.console_packages import can_act, team_acts
from web.views.console_queue import team_or_auditor
from web.views.flow import HtmxRequest, live, page_of, refusal_of, refused, state_filter
from web.views.runs import run_badge

Status = ComparisonRun.Status
BADGES = {
    Status.RUNNING: ("badge--info", "Runs under way"),
    Status.SCORING: ("badge--info", "Comparing"),
    Status.AWAITING_SIGNATURE: ("badge--warn", "Awaiting signature"),
    Status.ISSUED: ("badge--ok", "Issued"),
    Status.FAILED: ("badge--bad", "Failed"),
}
STATUS_CHOICES = [("", "Every state"), *((s.value, BADGES[s][1]) for s in Status)]
CONFIRMATION = (
    "I have checked both versions, the dataset version, the pre-registered comparison and the "
    "checks above, and I start this comparison."
)
TEMPLATE = "web/console/work/comparison_launcher.html"


def comparison_badge(status: str) -> dict[str, str]:
    css, words = BADGES.get(status, ("badge--neutral", status))  # type: ignore[call-overload]
    return {"css": css, "words": words}


# --- the launcher ---------------------------------------------------------------------------


def _pick(queryset, data, key):
    value = data.get(key, "")
    if not str(value).isdigit():
        return None
    return queryset.filter(pk=int(value)).first()


def _chosen(data) -> dict:
    """The candidate, baseline, version and protocol named in `data` (None where unnamed or not
    offered). The baseline defaults to the candidate's predecessor; only the versions its
    lineage reaches are offered."""
    candidate = _pick(selectors.comparison_candidates(), data, "candidate")
    baselines = selectors.package_predecessors(candidate) if candidate else []
    baseline = None
    if baselines:
        wanted = str(data.get("baseline", ""))
        baseline = next((p for p in baselines if str(p.pk) == wanted), baselines[0])
    return {
        "candidate": candidate,
        "baseline": baseline,
        "baselines": baselines,
        "dataset_version": _pick(selectors.launchable_versions(), data, "dataset_version"),
        "protocol": _pick(selectors.comparison_protocols(), data, "protocol"),
    }


def _check_rows(checks) -> list[dict]:
    return [
        {
            "check": c,
            "css": "badge--ok" if c.ok else ("badge--bad" if c.blocking else "badge--warn"),
            "words": "Passed" if c.ok else ("Blocks the run" if c.blocking else "Warning"),
        }
        for c in checks
    ]


def _preflight_context(chosen: dict) -> dict:
    protocol = chosen["protocol"]
    plan = [
        {
            "metric": metric_name(e.get("metric")),
            "hypothesis": e.get("hypothesis", ""),
            "margin": num3(e.get("margin")),
            "rule": margin_text(e),
        }
        for e in (protocol.document["comparison"].get("endpoints", []) if protocol else [])
    ]
    keys = ("candidate", "baseline", "dataset_version", "protocol")
    if not all(chosen[k] for k in keys):
        return {"plan": plan, "sides": None, "ready": False}
    sides = []
    for side in ("baseline", "candidate"):
        checks = run_preflight(
            package=chosen[side],
            dataset_version=chosen["dataset_version"],
            protocol=protocol,
        )
        sides.append({"side": side, "package": chosen[side], "checks": _check_rows(checks)})
    ready = all(r["check"].ok or not r["check"].blocking for s in sides for r in s["checks"])
    return {"plan": plan, "sides": sides, "ready": ready}


def _launcher_context(request: HttpRequest, data) -> dict:
    chosen = _chosen(data)
    return {
        "title": "Compare versions",
        "section": "console-comparisons",
        "candidates": selectors.comparison_candidates(),
        "versions": selectors.launchable_versions(),
        "protocols": selectors.comparison_protocols(),
        "chosen": chosen,
        "confirmation": CONFIRMATION,
        "can_launch": can_act(request),
        **_preflight_context(chosen),
    }


@team_or_auditor
def comparison_new(request: HtmxRequest) -> HttpResponse:
    """GET: the form (auditors: the choices, plan and checks, no button). POST (the team): with
    the confirmation ticked, `comparison_start`; its refusals one per line (422 to htmx, 400
    otherwise); success -> the comparison's page."""
    if request.method != "POST":
        return render(request, TEMPLATE, _launcher_context(request, request.GET))
    return _comparison_launch(request)


@team_acts
def _comparison_launch(request: HtmxRequest) -> HttpResponse:
    context = _launcher_context(request, request.POST)
    chosen = context["chosen"]
    problems = [
        f"Choose {words}."
        for key, words in (
            ("candidate", "an approved package that succeeds another version"),
            ("baseline", "a baseline its lineage reaches"),
            ("dataset_version", "a sealed dataset version"),
            ("protocol", "a locked protocol that pre-registers a comparison"),
        )
        if chosen[key] is None and not (key == "baseline" and chosen["candidate"] is None)
    ]
    if not problems and request.POST.get("confirm") != "yes":
        problems.append("Tick the confirmation: nothing starts without it.")
    refusal = None
    if problems:
        refusal = {"message": "The comparison was not started.", "errors": problems}
    else:
        try:
            comparison = comparison_start(
                actor=request.user,
                candidate=chosen["candidate"],
                baseline=chosen["baseline"],
                dataset_version=chosen["dataset_version"],
                protocol=chosen["protocol"],
            )
        except ApplicationError as exc:
            refusal = refusal_of(exc)
        else:
            target = reverse("web:console-comparison", args=[comparison.pk])
            if request.htmx:
                return HttpResponseClientRedirect(target)
            return redirect(target, permanent=False)
    context["refusal"] = refusal
    return refused(request, TEMPLATE, "form", context)


@team_or_auditor
def comparison_new_preflight(request: HttpRequest) -> HttpResponse:
    """The baseline choice, plan and checks, refreshed whenever a choice changes."""
    return render(request, f"{TEMPLATE}#preflight", _launcher_context(request, request.GET))


# --- the list and a comparison's page ---------------------------------------------------------


@team_or_auditor
def comparison_list(request: HttpRequest) -> HttpResponse:
    chosen = state_filter(request, Status.values, STATUS_CHOICES)
    page = page_of(request, selectors.comparisons_listed(request.user, status=chosen["status"]))
    return render(
        request,
        "web/console/work/comparisons.html",
        {
            "title": "Comparisons",
            "section": "console-comparisons",
            "page_obj": page,
            "rows": [{"c": c, "badge": comparison_badge(c.status)} for c in page.object_list],
            **chosen,
            "can_launch": can_act(request),
        },
    )


def _result_rows(result: dict) -> list[dict]:
    """The pre-registered endpoints' decisions, formatted as the comparison report prints
    them (the console shows the team every row; its numbers at the report's precision)."""
    rows = []
    for e in result.get("endpoints", []):
        difference = e.get("difference") or {}
        p_value = (e.get("test") or {}).get("p_value")
        rows.append(
            {
                "metric": metric_name(e.get("metric")),
                "hypothesis": e.get("hypothesis", ""),
                "margin": num3(e.get("margin")),
                "rule": margin_text(e),
                "estimate": num3(difference.get("estimate")),
                "interval": ci_range(difference) if difference.get("lower") is not None else "",
                "baseline": num3((e.get("baseline") or {}).get("estimate")),
                "candidate": num3((e.get("candidate") or {}).get("estimate")),
                "p": pvalue(p_value) if p_value is not None else "",
                "reason": e.get("reason", ""),
                "passed": e.get("passed"),
                "verdict": verdict(e.get("passed")),
            }
        )
    return rows


def _comparison_context(comparison: ComparisonRun) -> dict:
    report = comparison.reports.order_by("-version").first()
    result = comparison.result or {}
    return {
        "comparison": comparison,
        "badge": comparison_badge(comparison.status),
        "sides": [
            {"label": label, "run": run, "badge": run_badge(run.status)}
            for label, run in (
                ("Baseline", comparison.baseline),
                ("Candidate", comparison.candidate),
            )
        ],
        "final": comparison.status not in (Status.RUNNING, Status.SCORING),
        "rows": _result_rows(result),
        "result": result,
        "report": report,
        "plan": (comparison.candidate.protocol.document or {}).get("comparison", {}),
    }


@team_or_auditor
def comparison_detail(request: HttpRequest, pk: int) -> HttpResponse:
    comparison = selectors.comparison_get_visible(user=request.user, pk=pk)
    context = {
        "title": f"Comparison {comparison.reference}",
        "section": "console-comparisons",
        **_comparison_context(comparison),
    }
    return render(request, "web/console/work/comparison.html", context)


@team_or_auditor
def comparison_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of a comparison's page; 286 (stop polling) once it is scored or failed."""
    comparison = selectors.comparison_get_visible(user=request.user, pk=pk)
    context = _comparison_context(comparison)
    return live(request, "web/console/work/comparison.html#live", context, final=context["final"])
