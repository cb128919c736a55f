"""The vendor's packages: the list, the upload (with the intake's problems one per line) and a
package's page, whose status follows the smoke test live until it is decided."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect

from validation import selectors
from validation.api.serializers import PackageSerializer
from validation.errors import ApplicationError
from validation.models import ModelPackage
from validation.services.packages import package_submit
from web.access import vendor_required
from web.views.flow import HtmxRequest, live, page_of, refusal_of, refused
from web.views.runs import run_badge

Status = ModelPackage.Status

BADGES = {
    Status.TESTING: ("badge--info", "Smoke test running"),
    Status.REFUSED: ("badge--bad", "Refused"),
    Status.SUBMITTED: ("badge--warn", "Awaiting review"),
    Status.APPROVED: ("badge--ok", "Approved"),
    Status.REJECTED: ("badge--bad", "Rejected"),
}
#: Once here the package's page stops polling: nothing changes without a person acting.
SETTLED = {Status.REFUSED, Status.SUBMITTED, Status.APPROVED, Status.REJECTED}


def badge(status: str) -> dict[str, str]:
    css, words = BADGES.get(status, ("badge--neutral", status))  # type: ignore[call-overload]
    return {"css": css, "words": words}


@vendor_required
def package_list(request: HttpRequest) -> HttpResponse:
    packages = selectors.packages_visible_to(request.user).order_by("-submitted_at", "-id")
    page = page_of(request, packages)
    rows = [{"package": p, "badge": badge(p.status)} for p in page.object_list]
    return render(
        request,
        "web/packages/list.html",
        {"title": "Packages", "section": "packages", "page_obj": page, "rows": rows},
    )


@vendor_required
def package_upload(request: HtmxRequest) -> HttpResponse:
    """GET: the form. POST: the archive to `package_submit` (the API's intake); accepted ->
    the package's page, where the smoke test's outcome arrives live; refused -> the form again
    with each problem on its own line (422 to htmx, 400 to a plain post)."""
    context: dict = {"title": "Upload a package", "section": "packages"}
    if request.method != "POST":
        return render(request, "web/packages/upload.html", context)
    upload = request.FILES.get("file")
    if upload is None:
        refusal = {"message": "Choose a package archive to upload.", "errors": []}
    else:
        try:
            package = package_submit(actor=request.user, upload=upload)
        except ApplicationError as exc:
            refusal = refusal_of(exc)
        else:
            target = reverse("web:package", args=[package.pk])
            if request.htmx:
                return HttpResponseClientRedirect(target)
            return redirect(target, permanent=False)
    context["refusal"] = refusal
    return refused(request, "web/packages/upload.html", "form", context)


def _package_context(request: HttpRequest, package: ModelPackage) -> dict:
    shown = PackageSerializer(package).data  # exactly what the API shows a vendor
    manifest = shown["manifest"] or {}
    return {
        "package": package,
        "shown": shown,
        "manifest": manifest,
        "input": manifest.get("input") or {},
        "output": manifest.get("output") or {},
        "training": manifest.get("training_data") or {},
        "badge": badge(package.status),
        "settled": package.status in SETTLED,
    }


@vendor_required
def package_detail(request: HttpRequest, pk: int) -> HttpResponse:
    package = selectors.package_get_visible(user=request.user, pk=pk)
    others = selectors.package_other_versions(package)
    runs = selectors.package_runs_visible(user=request.user, package=package)
    context = {
        "title": f"{package.name} {package.version}",
        "section": "packages",
        **_package_context(request, package),
        "others": [{"package": p, "badge": badge(p.status)} for p in others],
        "runs": [{"run": r, "badge": run_badge(r.status)} for r in runs],
    }
    return render(request, "web/packages/detail.html", context)


@vendor_required
def package_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The live status fragment: polled while the smoke test runs; 286 (stop polling) once the
    package is decided."""
    package = selectors.package_get_visible(user=request.user, pk=pk)
    context = _package_context(request, package)
    return live(request, "web/packages/detail.html#status", context, final=context["settled"])
