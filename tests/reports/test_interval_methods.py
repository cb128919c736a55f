"""The report names the interval methods its locked protocol chose (issue 18, items 10-12):
the methods table and the primary results, read back from the PDF's text."""

import io
from datetime import UTC, datetime

import numpy as np
import pytest
from pypdf import PdfReader

from reports.document import report_document_build
from reports.rendering import render_pdf
from tests.factories import RunFactory
from validation.management.commands.demo import PROTOCOL
from validation.models import MetricResult, ValidationRun
from validation.protocol_document import with_defaults
from validation.stats.evaluation import Plan, evaluate

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def _document(protocol_document: dict, y, scores) -> dict:
    run = RunFactory.create(
        status=ValidationRun.Status.REPORTING, protocol__document=protocol_document
    )
    groups = {s["attribute"]: np.array(["a"] * len(y)) for s in protocol_document["subgroups"]}
    plan = Plan.from_protocol(protocol_document, threshold=float(run.package.manifest["threshold"]))
    sections = evaluate(y, scores, groups, plan)
    sections.pop("scoring")
    sections["failures"] = {"by_category": [], "n_cases": len(y), "n_scored": len(y)}
    for section, value in sections.items():
        MetricResult.objects.create(run=run, section=section, value=value)
    return report_document_build(
        run, report_ref="RPT-TEST", version=1, generated_at=datetime(2026, 12, 7, tzinfo=UTC)
    )


def _methods(document: dict) -> dict[str, str]:
    return {row["quantity"]: row["method"] for row in document["methods"]}


def _pdf_text(document: dict) -> str:
    pages = PdfReader(io.BytesIO(render_pdf(document))).pages
    return "".join("".join(page.extract_text() for page in pages).split())


def _study(n=120, seed=5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.clip(0.25 + 0.5 * y + rng.normal(0, 0.2, n), 0, 1)


def test_new_protocol_reports_the_logit_delong_and_continuity_corrected_wilson(world):
    document = _document(with_defaults({**PROTOCOL, "interval_method": "wilson-cc"}), *_study())
    methods = _methods(document)
    assert methods["AUC"].startswith("DeLong, logit scale (Sun & Xu 2014 variance); ")
    assert "Hanley-McNeil score interval" in methods["AUC"]  # the fallback, named up front
    assert methods["Sensitivity"] == "Wilson score with continuity correction (Newcombe 1998)"
    assert document["protocol"]["auc_interval_method"] == "delong-logit"
    assert document["primary"]["auc"]["method"] == "DeLong, logit scale (Sun & Xu 2014 variance)"
    text = _pdf_text(document)
    assert "DeLong,logitscale(Sun&Xu2014variance)" in text
    assert "Wilsonscorewithcontinuitycorrection(Newcombe1998)" in text


def test_a_protocol_locked_before_the_option_is_reported_with_plain_delong(world):
    legacy = {k: v for k, v in with_defaults(PROTOCOL).items() if k != "auc_interval_method"}
    document = _document(legacy, *_study())
    assert _methods(document)["AUC"].startswith("DeLong (Sun & Xu 2014); ")
    assert _methods(document)["Sensitivity"] == "Wilson score"
    assert document["primary"]["auc"]["method"] == "DeLong (Sun & Xu 2014)"


def test_a_perfect_auc_on_few_cases_prints_the_fallback_interval_by_name(world):
    y = np.r_[np.zeros(6, dtype=int), np.ones(6, dtype=int)]
    document = _document(with_defaults(PROTOCOL), y, np.linspace(0.05, 0.95, 12))
    auc = document["primary"]["auc"]
    assert auc["estimate"] == 1.0 and auc["upper"] == 1.0 and auc["lower"] < 0.8
    assert auc["method"].startswith("Hanley-McNeil score interval")
    assert "Hanley-McNeilscoreinterval,N*=(m+n)/2(Newcombe2006)" in _pdf_text(document)
