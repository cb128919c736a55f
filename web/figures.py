"""The report's own figures (reports.plots) as images for the results pages: the vendor's
(web/views/runs.py, from the results the vendor may read) and the console's (full precision).
An <img> each: inline SVG would need a looser CSP."""

import base64

from django.http import Http404, HttpRequest, HttpResponse

from reports import plots

PLOTS = {"roc", "forest", "calibration"}


def figure(results: dict, name: str) -> str | None:
    """One of the report's own figures (reports.plots, drawn as reports.rendering draws them
    for the PDF) from the results this user may read: what disclosure withholds (small
    calibration bins, ROC steps, subgroup cells) is not drawn. None when nothing is left."""
    primary = results.get("primary") or {}
    sensitivity, specificity = primary.get("sensitivity") or {}, primary.get("specificity") or {}
    if name == "roc":
        roc, auc = primary.get("roc") or {}, primary.get("auc") or {}
        if not (roc.get("fpr") and roc.get("tpr")):
            return None
        operating_point = None
        if sensitivity.get("estimate") is not None and specificity.get("estimate") is not None:
            operating_point = (1 - specificity["estimate"], sensitivity["estimate"])
        return plots.roc_plot(
            roc["fpr"], roc["tpr"], float(auc.get("estimate") or 0.0), operating_point
        )
    if name == "forest":
        if not results.get("subgroups"):
            return None
        return plots.forest_plot(
            results["subgroups"], metric="sensitivity", reference=sensitivity.get("estimate")
        )
    bins = (results.get("calibration") or {}).get("bins")
    return plots.calibration_plot(bins) if isinstance(bins, list) else None


def drawable(results: dict) -> dict[str, bool]:
    """Which figures have something to draw, without drawing them (the same tests as
    reports.plots applies)."""
    primary = results.get("primary") or {}
    roc = primary.get("roc") or {}
    bins = (results.get("calibration") or {}).get("bins") or []
    return {
        "roc": bool(roc.get("fpr") and roc.get("tpr")),
        "forest": any(
            not row.get("suppressed") and isinstance(row.get("sensitivity"), dict)
            for row in results.get("subgroups") or []
        ),
        "calibration": any(
            not b.get("suppressed") and b.get("mean_predicted") is not None for b in bins
        ),
    }


def figure_response(request: HttpRequest, results: dict | None, name: str) -> HttpResponse:
    """One figure as image/svg+xml, or 404 when it has nothing to draw."""
    uri = figure(results, name) if results else None
    if uri is None:
        raise Http404("This figure has nothing to draw.")
    svg = base64.b64decode(uri.split(",", 1)[1])
    # A figure is part of the results page, whose own request already counted as activity:
    # three figures loading at once need not each write the session again.
    request.session.modified = False
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=300"
    return response
