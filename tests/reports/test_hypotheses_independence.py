"""Sections 4 (hypotheses and sample size) and 6 (independence from the declared training data)
of a report built from a scored run (issue 18, items 4 and 5), read back from the PDF's text;
a run scored before the split existed, and a document built before either section."""

import io
from datetime import UTC, datetime

import numpy as np
import pytest
from pypdf import PdfReader

from reports.document import report_document_build
from reports.rendering import render_pdf
from tests.factories import CaseFactory, RunFactory, protocol_document
from tests.support.sample_document import sample_document
from validation.models import MetricResult, Prediction, ValidationRun
from validation.services.scoring import run_compute_metrics
from validation.stats.sample_size import auc_power

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

SCANNERS = [
    {"manufacturer": "Acme Medical", "model": "Acme DR-500", "institution": "Northfield"},
    {"manufacturer": "Borealis Imaging", "model": "Aurora CR-2", "institution": "Lakeside"},
    {"manufacturer": "Cobalt Systems", "model": "Cobalt XR-9", "institution": "Harbor"},
]
TRAINING = {"sites": ["Vendor Internal Archive"], "scanners": ["Acme DR-500", "Aurora CR-2"]}


def _scored_run(*, n=60, shares=(0.4, 0.35, 0.25), protocol=None, min_cell=10):
    rng = np.random.default_rng(18)
    labels = rng.integers(0, 2, n)
    scores = np.clip(0.3 + 0.4 * labels + rng.normal(0, 0.18, n), 0, 1)
    run = RunFactory.create(status=ValidationRun.Status.REPORTING)
    run.package.manifest = {"threshold": 0.5, "training_data": TRAINING}
    run.package.save(update_fields=["manifest"])
    run.protocol.document = protocol or protocol_document(
        min_cell_size=min_cell,
        acceptance_criteria=[
            {"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.75},
            {"metric": "sensitivity", "bound": "lower", "comparator": ">=", "value": 0.6},
        ],
    )
    run.protocol.save(update_fields=["document"])
    bounds = np.cumsum(shares) * n
    cases = [
        CaseFactory.create(
            dataset_version=run.dataset_version,
            case_id=f"C{i:03d}",
            label=int(labels[i]),
            attributes={
                "sex": "F" if i % 2 else "M",
                **SCANNERS[int(np.searchsorted(bounds, i, "right"))],
            },
        )
        for i in range(n)
    ]
    Prediction.objects.bulk_create(
        [Prediction(run=run, case=c, score=float(scores[i])) for i, c in enumerate(cases)]
    )
    run_compute_metrics(run)
    return run


def _build(run) -> dict:
    return report_document_build(
        run, report_ref="RPT-18", version=1, generated_at=datetime(2026, 12, 8, tzinfo=UTC)
    )


def _words(document: dict) -> str:
    pages = PdfReader(io.BytesIO(render_pdf(document))).pages
    return " ".join(" ".join(page.extract_text() for page in pages).split())


def test_the_report_states_the_overlap_and_splits_the_primary_metrics(world):
    run = _scored_run()
    doc = _build(run)
    independence = doc["independence"]
    assert independence["n_cases"] == 60 and independence["n_overlap"] == 45  # Acme + Borealis
    assert independence["share"] == 0.75 and independence["independent"] is False
    assert independence["declared_scanners"] == ["Acme DR-500", "Aurora CR-2"]
    assert independence["overlapping_scanners"] == [
        "Acme Medical Acme DR-500",
        "Borealis Imaging Aurora CR-2",
    ]
    assert independence["computed"] is True
    training, independent = independence["split"]
    assert (training["n"], independent["n"]) == (45, 15)
    stored = MetricResult.objects.get(run=run, section="independence").value["split"][0]
    assert training["auc"]["estimate"] == round(stored["auc"]["estimate"], 3)  # as printed
    assert "independence" in doc["test_data"]  # kept for older templates
    words = _words(doc)
    assert (
        "45 of the 60 test cases (75%) come from sites or scanners the vendor declared it "
        "trained on" in words
    )
    assert "OVERLAP" in words and "Primary metrics by training source" in words
    assert "From a declared training site or scanner 45" in words
    assert "its model alone, or its manufacturer alone" in words
    assert "No test site appears among the vendor's declared training sites" not in words


def test_the_report_derives_the_goals_from_the_criteria_and_labels_observed_power(world):
    run = _scored_run()
    doc = _build(run)
    hypotheses = doc["hypotheses"]
    assert hypotheses["derived"] is True
    auc, sensitivity = hypotheses["goals"]
    assert (auc["metric"], auc["goal"], auc["source"]) == ("auc", 0.75, "derived")
    assert auc["power_basis"] == "observed"
    primary = MetricResult.objects.get(run=run, section="primary").value
    counts = primary["counts"]
    expected = auc_power(
        goal=0.75,
        auc=primary["auc"]["estimate"],
        n_pos=counts["n_pos"],
        n_neg=counts["n_neg"],
        scale="linear",  # protocol_document() predates auc_interval_method: plain DeLong
    )
    assert auc["power"] == round(expected, 3)
    half = (primary["sensitivity"]["upper"] - primary["sensitivity"]["lower"]) / 2
    assert sensitivity["half_width"] == round(half, 3)
    words = _words(doc)
    assert "derived from its acceptance criteria" in words
    assert "observed, descriptive" in words
    assert "H0: AUC < 0.750" in words and "H1: AUC ≥ 0.750" in words
    assert "not a pre-specified sample-size justification" in words


def test_stated_goals_are_reported_with_power_at_the_anticipated_value(world):
    protocol = protocol_document(
        min_cell_size=10,
        performance_goals=[{"metric": "sensitivity", "goal": 0.7, "anticipated": 0.9}],
    )
    doc = _build(_scored_run(protocol=protocol))
    [goal] = doc["hypotheses"]["goals"]
    assert goal["source"] == "stated" and goal["power_basis"] == "anticipated"
    assert goal["required"]["n_pos"] > 0 and goal["required"]["n_total"] > goal["required"]["n_pos"]
    words = _words(doc)
    assert "states a performance goal for each primary endpoint" in words
    assert "at the anticipated value" in words and "anticipated 0.900" in words


def test_a_run_scored_before_the_split_still_reports_the_share(world):
    run = _scored_run()
    MetricResult.objects.filter(run=run, section="independence").delete()  # as stored then
    doc = _build(run)
    independence = doc["independence"]
    assert independence["computed"] is False and independence["split"] is None
    assert independence["n_overlap"] == 45 and independence["share"] == 0.75
    words = _words(doc)
    assert "45 of the 60 test cases (75%)" in words
    assert "was not computed for this run" in words


def test_a_small_overlap_withholds_its_count_and_its_metrics(world):
    run = _scored_run(shares=(0.05, 0.0, 0.95), min_cell=10)  # 3 Acme cases of 60
    doc = _build(run)
    independence = doc["independence"]
    assert independence["counts_suppressed"] is True
    assert independence["n_overlap"] is None and independence["share"] is None
    assert all(row == {"attribute": "training source", "group": row["group"], "suppressed": True}
               for row in independence["split"])  # fmt: skip
    words = _words(doc)
    assert "Fewer than 10 of the 60 test cases" in words
    assert "3 of the 60" not in words


def test_a_document_built_before_either_section_renders_and_says_so():
    document = sample_document()
    del document["hypotheses"], document["independence"]
    words = _words(document)
    assert "built before hypotheses and sample size were reported" in words
    assert "built before independence on sites and scanners was reported" in words


def test_the_sample_document_shows_both_sections():
    words = _words(sample_document())
    assert (
        "72 of the 200 test cases (36%) come from sites or scanners the vendor declared it "
        "trained on" in words
    )
    assert "H0: Sensitivity ≤ 0.700" in words and "H1: Sensitivity > 0.700" in words
