"""The review console's package review: every package with the team's full view (manifest,
intake checks, smoke-test results, the runner's detail on a refusal, declared training sites
and scanners) and the decision, approve or reject with a reason, through `package_review`
(audited). Auditors read; they have no form and their posts answer 403."""

import json

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from validation import selectors
from validation.api.serializers import PackageTeamSerializer
from validation.errors import ApplicationError
from validation.models import ModelPackage, Role
from validation.services.packages import package_review
from web.access import role_required, roles
from web.views.console_queue import team_or_auditor
from web.views.flow import HtmxRequest, page_of, refusal_of, refused, state_filter
from web.views.packages import badge
from web.views.runs import run_badge

Status = ModelPackage.Status
TEAM = {Role.REVIEWER, Role.QA_APPROVER}
#: Actions: reviewers and QA approvers only (an auditor's post answers 403).
team_acts = role_required(Role.REVIEWER, Role.QA_APPROVER)
STATUS_CHOICES = [("", "Every state"), *((s.value, badge(s.value)["words"]) for s in Status)]

#: The smoke test's steps, in order, with the refusal categories that stop a package at each.
SMOKE_STEPS = [
    ("load", "Loads in the sandbox ({loader})", {"load-failed"}),
    (
        "batch",
        "Answers a batch of 8 synthetic inputs in time and memory",
        {"bad-input", "timeout", "oom", "crash"},
    ),
    (
        "output",
        "Output: finite, of the declared width, activated scores within [0, 1]",
        {"bad-output"},
    ),
    ("gradcam", "Grad-CAM target layer resolves, maps finite", set()),
]
LOADERS = {"pt2": "torch.export", "onnx": "onnxruntime"}


def can_act(request: HttpRequest) -> bool:
    """Reviewers and QA approvers act in the console; auditors only read."""
    return bool(roles(request) & TEAM)


def _intake_checks(package: ModelPackage) -> list[dict]:
    """The checks at upload (a package row exists only if it passed them), then the smoke
    test's steps: passed, failed (where a refusal stopped it), not reached, or running."""
    checks = [
        {"label": "Archive within the size limit and readable", "state": "passed"},
        {"label": "Manifest valid against its schema", "state": "passed"},
        {"label": "Not a duplicate of this vendor's packages", "state": "passed"},
    ]
    manifest = package.manifest or {}
    steps = [
        (key, label.format(loader=LOADERS.get(package.model_format, package.model_format)), cats)
        for key, label, cats in SMOKE_STEPS
        if key != "gradcam" or manifest.get("gradcam_target_layer")
    ]
    if package.status == Status.REFUSED:
        reasons = " ".join(package.refusal_reasons or [])
        failed_at = next(
            (key for key, _label, cats in steps if package.refusal_category in cats), None
        )
        if failed_at == "output" and "Grad-CAM" in reasons:
            failed_at = "gradcam"
        state = "passed" if failed_at else "not tested"
        for key, label, _cats in steps:
            if key == failed_at:
                checks.append({"label": label, "state": "failed"})
                state = "not reached"
            else:
                checks.append({"label": label, "state": state})
        return checks
    state = "running" if package.status == Status.TESTING else "passed"
    checks += [{"label": label, "state": state} for _key, label, _cats in steps]
    return checks


CHECK_BADGES = {
    "passed": "badge--ok",
    "failed": "badge--bad",
    "running": "badge--info",
    "not reached": "badge--neutral",
    "not tested": "badge--neutral",
}


def _package_context(request: HttpRequest, package: ModelPackage) -> dict:
    shown = PackageTeamSerializer(package).data
    manifest = shown["manifest"] or {}
    checks = _intake_checks(package)
    for check in checks:
        check["css"] = CHECK_BADGES[check["state"]]
    return {
        "package": package,
        "shown": shown,
        "manifest": manifest,
        "manifest_json": json.dumps(manifest, indent=2, sort_keys=True),
        "input": manifest.get("input") or {},
        "output": manifest.get("output") or {},
        "training": manifest.get("training_data") or {},
        "badge": badge(package.status),
        "checks": checks,
        "smoke": selectors.package_smoke_record(package),
        "can_review": can_act(request) and package.status == Status.SUBMITTED,
    }


@team_or_auditor
def package_list(request: HttpRequest) -> HttpResponse:
    chosen = state_filter(request, Status.values, STATUS_CHOICES)
    status = chosen["status"]
    packages = selectors.packages_visible_to(request.user).order_by("-submitted_at", "-id")
    if status:
        packages = packages.filter(status=status)
    page = page_of(request, packages)
    return render(
        request,
        "web/console/work/packages.html",
        {
            "title": "Package review",
            "section": "console-packages",
            "page_obj": page,
            "rows": [{"package": p, "badge": badge(p.status)} for p in page.object_list],
            **chosen,
        },
    )


@team_or_auditor
def package_detail(request: HttpRequest, pk: int) -> HttpResponse:
    package = selectors.package_get_visible(user=request.user, pk=pk)
    runs = selectors.package_runs_visible(user=request.user, package=package)
    context = {
        "title": f"Review {package.name} {package.version}",
        "section": "console-packages",
        **_package_context(request, package),
        "runs": [{"run": r, "badge": run_badge(r.status)} for r in runs],
    }
    return render(request, "web/console/work/package.html", context)


@team_acts
def package_decide(request: HtmxRequest, pk: int) -> HttpResponse:
    """POST: approve (`decision=approve`) or reject with a reason (`decision=reject`, `note`)
    through `package_review`. Refusals come back on the form (422 to htmx, 400 otherwise);
    success -> the package's page again (HX-Redirect, or 303)."""
    package = selectors.package_get_visible(user=request.user, pk=pk)
    if request.method != "POST":
        return redirect("web:console-package", pk=package.pk)
    decision = request.POST.get("decision", "")
    note = request.POST.get("note", "")
    refusal = None
    if decision not in ("approve", "reject"):
        refusal = {"message": "Choose to approve or to reject the package.", "errors": []}
    else:
        try:
            package_review(
                actor=request.user, package=package, approve=decision == "approve", note=note
            )
        except ApplicationError as exc:
            refusal = refusal_of(exc)
    target = reverse("web:console-package", args=[package.pk])
    if refusal is None:
        if request.htmx:
            return HttpResponseClientRedirect(target)
        return redirect(target, permanent=False)
    package.refresh_from_db()
    context = {
        "title": f"Review {package.name} {package.version}",
        "section": "console-packages",
        **_package_context(request, package),
        "runs": [],
        "refusal": refusal,
        "note": note,
    }
    return refused(request, "web/console/work/package.html", "review", context)
