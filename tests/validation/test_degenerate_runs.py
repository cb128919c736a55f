"""Degenerate outcomes (issue 14, item 12): a run where every case fails, where no positive or
no negative case is scored, or where the model returns one score value for every case, ends in
a report that says so (verdict fail, the finding in the summary and the limitations), through
the real scoring (`validation.stats.evaluation`), report draft and PDF render."""

import io

import pytest
import torch
from pypdf import PdfReader

from reports.models import Report
from reports.rendering import render_pdf
from tests.factories import protocol_document
from tests.run_helpers import infer, start_run
from validation.models import Case, Prediction, ValidationRun
from validation.packaging import build_package, default_manifest
from validation.services import runs

pytestmark = pytest.mark.django_db
Status = ValidationRun.Status
PROTOCOL = protocol_document(min_cell_size=3, explain={"cases": "none"})


class _Constant(torch.nn.Module):
    """Scores every image alike: a logit of 0 (sigmoid 0.5), or NaN."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3)
        self.value = value

    def forward(self, x):
        return self.conv(x).mean(dim=(1, 2, 3)).unsqueeze(1) * 0.0 + self.value


def _package(tmp_path, value: float):
    return build_package(
        model=_Constant(value),
        example_input=torch.randn(2, 1, 64, 64),
        manifest=default_manifest(name="Flat", version="1.0", gradcam_target_layer="conv"),
        out_path=tmp_path / "flat.tar.gz",
    )


def _finish(run) -> tuple[dict, str]:
    """Score, explain and draft the report as the tasks would; the document and its PDF text."""
    for stage in (runs.run_score, runs.run_explain, runs.run_report):
        stage(run_id=run.pk)
    assert ValidationRun.objects.get(pk=run.pk).status == Status.AWAITING_SIGNATURE
    document = Report.objects.get(run=run).document

    pdf = render_pdf(document)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return document, " ".join(text.split())


def _scored_as(run, score_for) -> None:
    """The predictions a shard writes, one per case: a score, or a failure category."""
    rows = []
    for case in Case.objects.filter(dataset_version=run.dataset_version):
        score = score_for(case)
        rows.append(
            Prediction(
                run=run, case=case, score=score, error_category="" if score is not None else "crash"
            )
        )
    Prediction.objects.bulk_create(rows)
    ValidationRun.objects.filter(pk=run.pk).update(status=Status.SCORING)


@pytest.mark.sandbox
def test_every_case_failed_ends_in_a_report_that_says_so(world, cohort, tmp_path):
    run = start_run(
        world, package_path=_package(tmp_path, float("nan")), manifest=cohort, protocol=PROTOCOL
    )
    infer(run.pk)
    assert not Prediction.objects.filter(run=run, error_category="").exists()
    document, text = _finish(run)
    assert document["summary"]["verdict"] == "fail"
    assert "Every case failed" in document["summary"]["degenerate"][0]
    assert document["limitations"][0].startswith("Every case failed")
    assert "(not estimable: no case scored)" in " ".join(document["limitations"])
    assert "Degenerate outcome: Every case failed" in text


@pytest.mark.sandbox
def test_a_single_score_value_ends_in_a_failed_verdict_that_says_why(world, cohort, tmp_path):
    run = start_run(world, package_path=_package(tmp_path, 0.0), manifest=cohort, protocol=PROTOCOL)
    infer(run.pk)
    assert set(Prediction.objects.filter(run=run).values_list("score", flat=True)) == {0.5}
    document, text = _finish(run)
    # The protocol's criterion (AUC lower bound >= 0.5) was once met to the letter by a
    # zero-width 0.5 +- 0; the score interval that replaces a zero DeLong variance fails it.
    auc_criterion = next(c for c in document["summary"]["criteria"] if c["metric"] == "auc")
    assert auc_criterion["observed"] < 0.5 and not auc_criterion["passed"]
    assert auc_criterion["method"].startswith("Hanley-McNeil score interval")
    assert document["summary"]["verdict"] == "fail"
    assert "same score (0.5) for every scored case" in document["summary"]["degenerate"][0]
    assert "Degenerate outcome: The model returned the same score (0.5)" in text
    assert "FAIL" in text


@pytest.mark.parametrize(
    ("failing_label", "finding"),
    [(1, "No positive case was scored"), (0, "No negative case was scored")],
)
def test_one_class_unscored_ends_in_a_report_that_says_so(
    world, cohort, package_file, failing_label, finding
):
    run = start_run(world, package_path=package_file, manifest=cohort, protocol=PROTOCOL)
    _scored_as(run, lambda c: None if c.label == failing_label else 0.2 + 0.05 * (c.pk % 7))
    document, text = _finish(run)
    assert document["summary"]["verdict"] == "fail"
    assert document["summary"]["degenerate"][0].startswith(finding)
    assert any(item.startswith(finding) for item in document["limitations"])
    assert f"Degenerate outcome: {finding}" in text
