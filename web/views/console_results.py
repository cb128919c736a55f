"""The review console's results of a run: everything the PDF shows and more, at full precision
for the validation team (and auditors, read-only): primary metrics with intervals, acceptance,
subgroup tables with intervals and the multiplicity note, disparities with intervals and
p-values, calibration, failures, localisation agreement; each subgroup row opens its cases."""

from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from validation import selectors
from validation.api.serializers import aggregate_results
from validation.models import Role
from web import figures
from web.access import role_required
from web.views.runs import run_badge

console_required = role_required(Role.REVIEWER, Role.QA_APPROVER, Role.AUDITOR)
PRIMARY = [
    ("auc", "AUC"),
    ("sensitivity", "Sensitivity"),
    ("specificity", "Specificity"),
    ("ppv", "PPV"),
    ("npv", "NPV"),
    ("accuracy", "Accuracy"),
    ("balanced_accuracy", "Balanced accuracy"),
    ("f1", "F1"),
    ("fpr", "False positive rate"),
    ("prevalence", "Prevalence"),
]


def _team_results(run) -> dict | None:
    sections = selectors.run_results(run)
    if not sections:
        return None
    min_cell = int(run.protocol.document["min_cell_size"])
    results = aggregate_results(sections, audience="team", min_cell=min_cell)
    results["localisation"] = selectors.run_localisation(run)
    return results


@console_required
def run_results(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.run_get_visible(user=request.user, pk=pk)
    results = _team_results(run)
    document = run.protocol.document
    context: dict = {
        "title": f"Run {run.pk}: results",
        "section": "console-runs",
        "run": run,
        "badge": run_badge(run.status),
        "results": results,
        "threshold": selectors.run_operating_threshold(run),
        "min_cell": int(document["min_cell_size"]),
        "multiplicity": document.get("multiplicity", "holm"),
        "level": round(100 * float(document.get("confidence_level", 0.95))),
    }
    if results is not None:
        primary = results["primary"]
        cases_url = reverse("web:console-run-cases", args=[run.pk])
        context.update(
            primary=[
                {"name": name, "value": primary[key]}
                for key, name in PRIMARY
                if isinstance(primary.get(key), dict)
            ],
            counts=primary.get("counts") or {},
            acceptance=results.get("acceptance") or {},
            subgroups=[
                {
                    **row,
                    "cases_url": cases_url
                    + "?"
                    + urlencode({"subgroup": f"{row['attribute']}={row['group']}"}),
                }
                for row in results["subgroups"]
            ],
            fairness=results["fairness"],
            exploratory=[r["attribute"] for r in results["fairness"] if r.get("exploratory")],
            calibration=results["calibration"],
            failures=results["failures"],
            independence=results.get("independence"),
            plots=figures.drawable(results),
            outcome_urls={
                o: cases_url + "?" + urlencode({"outcome": o}) for o in ("FN", "FP", "failed")
            },
        )
    return render(request, "web/console/cases/results.html", context)


@console_required
def run_plot(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    """One of the report's figures at the team's precision."""
    if name not in figures.PLOTS:
        raise Http404("No such figure.")
    run = selectors.run_get_visible(user=request.user, pk=pk)
    return figures.figure_response(request, _team_results(run), name)
