"""The review console's case screens: a run's case table and the case viewer with its images.

Every view of case-level data writes CASE_DATA_VIEWED first (validation.services.case_access):
one event per case table page, one per viewer page. The viewer's images (the DICOM rendered to
PNG, the Grad-CAM overlay, the ROI outline) load with a token the page's event signed; without
it they are refused (403), so every image served is one a recorded view showed. DICOM never
leaves the server: only PNG.

Auditors read the table and each case's record (score, label, outcome, attributes), audited
like anyone's, but not the images: auditing the record needs to know which case was seen by
whom, not the patient's pixels, and the partners granted their images for validation only. The
viewer says so on the page."""

from urllib.parse import urlencode

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from validation import selectors
from validation.dicom import display
from validation.dicom.pixels import DicomReadError
from validation.models import Role
from validation.services import case_access
from validation.storage import SequesteredDataError, case_dicom_bytes, case_mask_bytes
from web.access import role_required, roles
from web.views.flow import page_of

console_required = role_required(Role.REVIEWER, Role.QA_APPROVER, Role.AUDITOR)
FILTER_KEYS = ("subgroup", "outcome", "score_min", "score_max", "site", "scanner", "sort")

OUTCOME_BADGES = {
    "TP": ("badge--ok", "True positive"),
    "TN": ("badge--ok", "True negative"),
    "FP": ("badge--warn", "False positive"),
    "FN": ("badge--bad", "False negative"),
    "failed": ("badge--neutral", "Failed"),
}


def outcome_badge(outcome: str | None) -> dict[str, str]:
    css, words = OUTCOME_BADGES.get(outcome or "", ("badge--neutral", "Not scored"))
    return {"css": css, "words": words, "code": outcome or ""}


def images_allowed(request: HttpRequest) -> bool:
    """The validation team sees case images; auditors (only) see each case's record."""
    return bool(roles(request) & {Role.REVIEWER, Role.QA_APPROVER})


class CaseFilterForm(forms.Form):
    subgroup = forms.CharField(
        required=False, label="Subgroup", help_text="attribute=value, e.g. sex=F"
    )
    outcome = forms.ChoiceField(
        required=False,
        label="Outcome",
        choices=[("", "Any")] + [(o, OUTCOME_BADGES[o][1]) for o in selectors.CASE_OUTCOMES],
    )
    score_min = forms.FloatField(required=False, label="Score from")
    score_max = forms.FloatField(required=False, label="Score to")
    site = forms.ChoiceField(required=False, label="Site")
    scanner = forms.ChoiceField(required=False, label="Scanner")
    sort = forms.ChoiceField(
        required=False,
        label="Sort",
        choices=[("score-desc", "Score, highest first"), ("score-asc", "Score, lowest first")],
    )

    def __init__(self, *args, run, **kwargs):
        super().__init__(*args, **kwargs)
        options = selectors.run_case_choices(run)
        site, scanner = self.fields["site"], self.fields["scanner"]
        assert isinstance(site, forms.ChoiceField) and isinstance(scanner, forms.ChoiceField)
        site.choices = [("", "Any")] + [(s, s) for s in options["sites"]]
        scanner.choices = [("", "Any")] + [(s, s) for s in options["scanners"]]
        self.attributes = selectors.run_subgroup_attributes(run)

    def clean_subgroup(self) -> tuple[str, str] | None:
        text = ((self.cleaned_data or {}).get("subgroup") or "").strip()
        if not text:
            return None
        attribute, sep, value = text.partition("=")
        attribute, value = attribute.strip(), value.strip()
        if not sep or not attribute or not value:
            raise forms.ValidationError("Write a subgroup as attribute=value, e.g. sex=F.")
        if attribute not in self.attributes:
            names = ", ".join(sorted(self.attributes)) or "none"
            raise forms.ValidationError(
                f"{attribute} is not a subgroup attribute of this run's protocol ({names})."
            )
        return attribute, value

    def clean(self):
        data = super().clean() or {}
        low, high = data.get("score_min"), data.get("score_max")
        if low is not None and high is not None and low > high:
            self.add_error("score_max", "The upper score is below the lower one.")
        return data

    def filters(self) -> dict:
        """The filter as keyword arguments of selectors.run_case_rows."""
        data = self.cleaned_data
        return {
            "subgroup": data.get("subgroup"),
            "outcome": data.get("outcome") or None,
            "score_min": data.get("score_min"),
            "score_max": data.get("score_max"),
            "site": data.get("site") or None,
            "scanner": data.get("scanner") or None,
            "sort": data.get("sort") or "score-desc",
        }


def _query(request: HttpRequest) -> str:
    """The filter part of the query string (no page, no token), to carry between pages."""
    return urlencode([(k, request.GET[k]) for k in FILTER_KEYS if request.GET.get(k)])


def _recorded_filters(request: HttpRequest) -> dict:
    return {k: request.GET[k] for k in FILTER_KEYS if request.GET.get(k)}


def _filtered(request: HttpRequest, run):
    """(form, queryset or None when the filter is invalid)."""
    form = CaseFilterForm(request.GET or None, run=run)
    if request.GET and not form.is_valid():
        return form, None
    filters = form.filters() if request.GET else {}
    return form, selectors.run_case_rows(run, **filters)


@console_required
def case_list(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.run_get_visible(user=request.user, pk=pk)
    form, rows = _filtered(request, run)
    context: dict = {
        "title": f"Run {run.pk}: cases",
        "section": "console-runs",
        "run": run,
        "form": form,
        "query": _query(request),
        "threshold": selectors.run_operating_threshold(run),
    }
    if rows is None:
        return render(request, "web/console/cases/list.html", context, status=400)
    page = page_of(request, rows)
    predictions = list(page.object_list)
    case_access.case_list_viewed(
        actor=request.user,
        run=run,
        filters=_recorded_filters(request),
        matched=page.paginator.count,
        shown=len(predictions),
    )
    context.update(
        page_obj=page,
        rows=[{"p": p, "badge": outcome_badge(p.outcome)} for p in predictions],
    )
    return render(request, "web/console/cases/list.html", context)


def _neighbours(request: HttpRequest, run, case_pk: int) -> dict:
    """The case's place in the current filter: position, count, previous and next links."""
    _form, rows = _filtered(request, run)
    if rows is None:
        return {"position": None}
    ids = list(rows.values_list("case_id", flat=True))
    if case_pk not in ids:
        return {"position": None, "count": len(ids)}
    index = ids.index(case_pk)
    query = _query(request)

    def link(target: int) -> str:
        url = reverse("web:console-case", args=[run.pk, target])
        return f"{url}?{query}" if query else url

    return {
        "position": index + 1,
        "count": len(ids),
        "previous": link(ids[index - 1]) if index > 0 else None,
        "next": link(ids[index + 1]) if index + 1 < len(ids) else None,
    }


@console_required
def case_detail(request: HttpRequest, pk: int, case_pk: int) -> HttpResponse:
    run = selectors.run_get_visible(user=request.user, pk=pk)
    case, prediction, explanation = selectors.run_case_get(run, case_pk)
    images = images_allowed(request) and bool(case.file_path) and not case.read_error
    event = case_access.case_viewed(
        actor=request.user, run=run, case=case, images=images, filters=_recorded_filters(request)
    )
    token = case_access.image_token(actor=request.user, run=run, case=case, event=event)
    windows: list[dict] = []
    window = request.GET.get("window") or ""
    shape = _display_shape(case)
    query = _query(request)
    list_url = reverse("web:console-run-cases", args=[run.pk]) + (f"?{query}" if query else "")
    context = {
        "title": f"Case {case.case_id}",
        "section": "console-runs",
        "run": run,
        "case": case,
        "prediction": prediction,
        "badge": outcome_badge(getattr(prediction, "outcome", None)),
        "explanation": explanation,
        "threshold": selectors.run_operating_threshold(run),
        "images": images,
        "auditor_only": not images_allowed(request),
        "token": token,
        "window": window,
        "windows": windows,
        "shape": shape,
        "colour_stops": display.colour_stops(),
        "attributes": sorted((case.attributes or {}).items()),
        "list_url": list_url,
        "query": query,
        **_neighbours(request, run, case.pk),
    }
    if images:
        context["windows"] = _windows_of(case)
        base = {"v": token}
        if window:
            base["window"] = window
        context["image_query"] = urlencode(base)
        context["token_query"] = urlencode({"v": token})
    return render(request, "web/console/cases/detail.html", context)


def _windows_of(case) -> list[dict]:
    """The window presets the case's image offers (read from its DICOM header)."""
    try:
        ds = display.parse_dicom(case_dicom_bytes(case))
    except (DicomReadError, SequesteredDataError):
        return []
    return [{"key": w.key, "label": w.label} for w in display.window_choices(ds)]


def _display_shape(case) -> tuple[int, int] | None:
    """The rendered image's (height, width), from what ingest read from the header."""
    attributes = case.attributes or {}
    rows, columns = attributes.get("rows"), attributes.get("columns")
    if not (isinstance(rows, int) and isinstance(columns, int)):
        return None
    spacing = attributes.get("pixel_spacing") or []
    aspect = 1.0
    if len(spacing) == 2 and all(isinstance(v, int | float) and v > 0 for v in spacing):
        aspect = float(spacing[0]) / float(spacing[1])
    return display.display_shape(rows, columns, aspect)


def _image_case(request: HttpRequest, pk: int, case_pk: int):
    """The run and case of an image request, after the checks: console role, team member (not
    an auditor), the object visible, and a token from this person's viewer page of this case."""
    if not images_allowed(request):
        raise PermissionDenied("Auditors see each case's record, not its images.")
    run = selectors.run_get_visible(user=request.user, pk=pk)
    case, prediction, explanation = selectors.run_case_get(run, case_pk)
    event = case_access.image_token_event(
        request.GET.get("v", ""), actor=request.user, run=run, case=case
    )
    if event is None:
        raise PermissionDenied("Open the case in the viewer: its images load from there.")
    # The images are part of the viewer page, whose own request counted as activity.
    request.session.modified = False
    return run, case, explanation


def _png(data: bytes) -> HttpResponse:
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


@console_required
def case_image(request: HttpRequest, pk: int, case_pk: int) -> HttpResponse:
    """The case's DICOM rendered to PNG (?window= one of the image's windows)."""
    _run, case, _explanation = _image_case(request, pk, case_pk)
    try:
        shown = display.render(case_dicom_bytes(case), request.GET.get("window") or None)
    except display.UnknownWindow:
        raise Http404("This image offers no such window.") from None
    except (DicomReadError, SequesteredDataError):
        raise Http404("The image cannot be shown.") from None
    return _png(display.png_bytes(shown.pixels))


def _overlay_shape(case) -> tuple[int, int]:
    """The size overlays are drawn at: the image's display size times a whole factor."""
    shape = _display_shape(case)
    if shape is None:
        try:
            shape = display.render(case_dicom_bytes(case)).pixels.shape
        except (DicomReadError, SequesteredDataError):
            raise Http404("The image cannot be shown.") from None
    return display.overlay_shape(shape)


@console_required
def case_gradcam(request: HttpRequest, pk: int, case_pk: int) -> HttpResponse:
    """The Grad-CAM map as a coloured, partly transparent PNG at the image's display size."""
    _run, case, explanation = _image_case(request, pk, case_pk)
    if explanation is None:
        raise Http404("No Grad-CAM map for this case.")
    cam = selectors.explanation_cam(explanation)
    return _png(display.png_bytes(display.cam_overlay(cam, _overlay_shape(case))))


@console_required
def case_roi(request: HttpRequest, pk: int, case_pk: int) -> HttpResponse:
    """The reference ROI outlined on a transparent PNG at the overlay size: the contour of the
    case's stored mask where it has one, else its box."""
    _run, case, _explanation = _image_case(request, pk, case_pk)
    if not case.roi and not case.mask_path:
        raise Http404("This case has no reference ROI.")
    shape = _overlay_shape(case)
    thickness = max(2, max(shape) // 250)
    if case.mask_path:
        try:
            mask = display.load_mask(case_mask_bytes(case))
        except (SequesteredDataError, ValueError):
            raise Http404("The reference mask cannot be shown.") from None
        return _png(display.png_bytes(display.mask_outline(mask, shape=shape, thickness=thickness)))
    attributes = case.attributes or {}
    rows, columns = attributes.get("rows"), attributes.get("columns")
    source = (rows, columns) if isinstance(rows, int) and isinstance(columns, int) else shape
    outline = display.roi_outline(case.roi, source_shape=source, shape=shape, thickness=thickness)
    return _png(display.png_bytes(outline))
