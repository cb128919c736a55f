"""Grad-CAM exemplars on a real run (real sandboxed runner, real DICOM): the explanation stage
maps the false positives the stated rule chooses (reference-negative cases the shards do not
explain), once; the report shows each exemplar with its outcome, score, reference and group
and states the rule; a grant without exemplar images shows none."""

import io

import numpy as np
import pytest
from django.utils import timezone
from pypdf import PdfReader

from audit.models import AuditAction
from audit.selectors import audit_events_for
from reports.document import report_document_build
from reports.models import Report
from reports.rendering import render_html, render_pdf
from tests.factories import approved_package, protocol_document
from tests.run_helpers import infer
from validation.models import Explanation, Prediction
from validation.selectors import explanation_cam, run_exemplar_cases
from validation.services import runs
from validation.services.datasets import (
    dataset_create,
    dataset_grant,
    dataset_grant_revoke,
    dataset_version_import,
)
from validation.services.protocols import protocol_create
from validation.services.shards import explanation_row
from validation.stats.exemplars import outcome

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]


@pytest.fixture
def scored_run(world, package_file, cohort, django_capture_on_commit_callbacks):
    """A run of the 16-case cohort, scored, under a grant that allows exemplar images and the
    default protocol (first subgroup attribute: sex), waiting for its explanation stage."""
    package = approved_package(world, package_file)
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    version = dataset_version_import(actor=world.steward, dataset=dataset, source=cohort)
    grant = dataset_grant(
        actor=world.steward, dataset_version=version, vendor=world.vendor_a, allow_exemplars=True
    )
    protocol = protocol_create(
        actor=world.reviewer, name="P", document=protocol_document(min_cell_size=4)
    )
    with django_capture_on_commit_callbacks(execute=False):
        run = runs.run_start(
            actor=world.reviewer, package=package, dataset_version=version, protocol=protocol
        )
        infer(run.pk)
        runs.run_score(run_id=run.pk)
    return run, grant


def _score(prediction: Prediction) -> float:
    assert prediction.score is not None
    return prediction.score


def _outcomes(run) -> dict[str, list[Prediction]]:
    threshold = float(run.package.manifest["threshold"])
    found: dict[str, list[Prediction]] = {"TP": [], "FN": [], "FP": [], "TN": []}
    for p in Prediction.objects.filter(run=run, error_category="").select_related("case"):
        found[outcome(p.case.label, _score(p), threshold)].append(p)
    return found


def test_the_explanation_stage_maps_the_chosen_false_positives_once(scored_run):
    run, _grant = scored_run
    chosen, attribute = run_exemplar_cases(run)
    assert attribute == "sex"
    false_positives = [case for pick, case in chosen if pick.outcome == "FP"]
    assert false_positives, "the untrained model calls negatives positive: FPs to show"
    # For each sex group, the rule took that group's highest-scoring false positives.
    by_group: dict[str, list[Prediction]] = {}
    for p in _outcomes(run)["FP"]:
        by_group.setdefault(p.case.attributes["sex"], []).append(p)
    for group, predictions in by_group.items():
        mine = {c.pk for c in false_positives if c.attributes["sex"] == group}
        ranked = sorted(predictions, key=lambda p: (-_score(p), p.case.case_id))
        assert mine == {p.case_id for p in ranked[: len(mine)]}

    # A map stored by an earlier, interrupted delivery is kept as it is, not computed again.
    earlier = explanation_row(run, false_positives[0], np.full((8, 8), 0.5))
    earlier.save()
    runs.run_explain(run_id=run.pk)
    runs.run_explain(run_id=run.pk)  # a re-delivery: the run has moved on, nothing happens

    mapped = set(Explanation.objects.filter(run=run).values_list("case_id", flat=True))
    positives = {p.case_id for name in ("TP", "FN") for p in _outcomes(run)[name]}
    assert mapped == positives | {c.pk for c in false_positives}
    assert np.allclose(explanation_cam(Explanation.objects.get(pk=earlier.pk)), 128 / 255)
    assert all(
        Explanation.objects.get(run=run, case=c).cam_npy != earlier.cam_npy
        for c in false_positives[1:]
    )
    explained = [e for e in audit_events_for(run) if e.action == AuditAction.RUN_EXPLAINED]
    assert len(explained) == 1 and explained[0].payload["maps"] == len(mapped)


def _words(document) -> str:
    pages = PdfReader(io.BytesIO(render_pdf(document))).pages
    return " ".join(" ".join(page.extract_text() for page in pages).split())


def test_the_report_shows_each_exemplar_with_outcome_score_reference_and_group(scored_run):
    run, _grant = scored_run
    runs.run_explain(run_id=run.pk)
    runs.run_report(run_id=run.pk)
    x = Report.objects.get(run=run).document["explainability"]
    outcomes = _outcomes(run)
    expected = [name for name in ("TP", "FN", "FP") for _ in range(min(4, len(outcomes[name])))]
    assert [e["outcome"] for e in x["exemplars"]] == expected and "FP" in expected
    scores = {p.case.case_id: _score(p) for name in outcomes for p in outcomes[name]}
    chosen, _attribute = run_exemplar_cases(run)
    for exemplar, (pick, case) in zip(x["exemplars"], chosen, strict=True):
        # What vendors read: no case id, the score at the precision the report prints.
        assert set(exemplar) == {"outcome", "score", "reference", "group", "has_roi", "image_png"}
        assert exemplar["outcome"] == pick.outcome
        assert exemplar["score"] == round(scores[case.case_id], 3)
        assert exemplar["reference"] == ("positive" if case.label else "negative")
        assert exemplar["group"] == case.attributes["sex"]
        assert exemplar["has_roi"] is bool(case.roi)
        assert exemplar["image_png"].startswith("data:image/png;base64,")
    assert x["exemplar_attribute"] == "sex" and x["exemplars_without_map"] == 0
    assert x["exemplar_outcomes_absent"] == [o for o in ("TP", "FN", "FP") if not outcomes[o]]
    assert "sex groups" in x["exemplar_rule"]

    words = _words(Report.objects.get(run=run).document)
    assert " ".join(x["exemplar_rule"].split()) in words
    first_fp = next(e for e in x["exemplars"] if e["outcome"] == "FP")
    assert f"False positive, score {first_fp['score']:.3f} reference negative" in words
    assert f"sex {first_fp['group']}" in words
    assert "True positive, score" in words and "reference positive" in words


def test_no_exemplar_appears_without_a_grant_for_images(scored_run, world):
    run, grant = scored_run
    runs.run_explain(run_id=run.pk)
    dataset_grant_revoke(actor=world.steward, grant=grant)
    dataset_grant(actor=world.steward, dataset_version=run.dataset_version, vendor=world.vendor_a)
    document = report_document_build(
        run, report_ref="R-TEST", version=1, generated_at=timezone.now()
    )
    x = document["explainability"]
    assert x["exemplars_allowed"] is False and x["exemplars"] == []
    assert "exemplar_rule" not in x
    html = render_html(document)
    assert "does not permit images" in html and "Grad-CAM exemplar" not in html
