"""The console's results page shows the split by declared training source (issue 18, item 5)
at the team's precision, and says when a run was scored before the split existed."""

import pytest
from django.urls import reverse

from tests.support.people import signed_in
from tests.web.console_case_helpers import imaged_run
from validation.models import MetricResult
from validation.services.scoring import run_compute_metrics

pytestmark = pytest.mark.django_db


def test_results_page_shows_the_split_by_training_source(world):
    run = imaged_run(world)
    MetricResult.objects.filter(run=run).delete()
    run.package.manifest = {**run.package.manifest, "training_data": {"sites": ["north"]}}
    run.package.save(update_fields=["manifest"])
    run_compute_metrics(run)
    section = MetricResult.objects.get(run=run, section="independence").value
    url = reverse("web:console-run-results", args=[run.pk])
    html = signed_in(world.reviewer).get(url).content.decode()
    assert f"{section['n_overlap']} of {section['n_cases']} test cases come from" in html
    assert "(North)" in html and "From a declared training source" in html
    sensitivity = section["split"][0]["sensitivity"]["estimate"]
    assert f"{sensitivity:.4f}" in html  # full precision for the team

    MetricResult.objects.filter(run=run, section="independence").delete()
    html = signed_in(world.reviewer).get(url).content.decode()
    assert "scored before the split by training source existed" in html


def test_the_vendor_reads_the_split_at_the_reports_precision(world):
    run = imaged_run(world)
    MetricResult.objects.filter(run=run).delete()
    run.package.manifest = {**run.package.manifest, "training_data": {"sites": ["north"]}}
    run.package.save(update_fields=["manifest"])
    run_compute_metrics(run)
    section = MetricResult.objects.get(run=run, section="independence").value
    response = signed_in(world.vendor_user).get(reverse("web:run-results", args=[run.pk]))
    html = response.content.decode()
    assert f"{section['n_overlap']} of {section['n_cases']} test cases come from" in html
    assert "From a declared training source" in html and "Independent" in html
    shown = [row for row in section["split"] if row["sensitivity"]["estimate"] is not None]
    assert shown
    for row in shown:  # three decimals, as the vendor's API and report give it (the team: 4)
        assert f"{row['sensitivity']['estimate']:.3f} (" in html
