"""The run pipeline on the real runner: every stage run twice (idempotent), failures counted,
cancellation honoured, unexpected errors fail the run with a vendor-safe message."""

import shutil

import pytest

from audit.models import AuditAction
from audit.selectors import audit_events_for
from reports.models import Report
from reports.rendering import render_html
from tests.factories import approved_package, protocol_document
from tests.run_helpers import infer
from validation import task_names
from validation.models import Explanation, MetricResult, Prediction, RunShard, ValidationRun
from validation.services import runs
from validation.services.datasets import dataset_create, dataset_grant, dataset_version_import
from validation.services.protocols import protocol_create
from validation.services.run_stages import PUBLIC_FAILURE

pytestmark = pytest.mark.django_db
Status = ValidationRun.Status

PROTOCOL = protocol_document(
    min_cell_size=8, subgroups=[{"attribute": "sex"}, {"attribute": "manufacturer"}]
)


@pytest.fixture
def cohort_with_broken_file(cohort, tmp_path):
    folder = tmp_path / "cohort"
    shutil.copytree(cohort.parent, folder)
    (folder / "dicom" / "broken.dcm").write_bytes(b"\x00" * 300)
    with open(folder / "manifest.csv", "a") as fh:
        fh.write("BROKEN,dicom/broken.dcm,1,,,,,White,NORTHFIELD\n")
    return folder / "manifest.csv"


@pytest.fixture
def queued_run(world, package_file, cohort_with_broken_file, django_capture_on_commit_callbacks):
    package = approved_package(world, package_file)
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    version = dataset_version_import(
        actor=world.steward, dataset=dataset, source=cohort_with_broken_file
    )
    dataset_grant(actor=world.steward, dataset_version=version, vendor=world.vendor_a)
    protocol = protocol_create(actor=world.reviewer, name="P", document=PROTOCOL)
    with django_capture_on_commit_callbacks(execute=False):
        return runs.run_start(
            actor=world.reviewer, package=package, dataset_version=version, protocol=protocol
        )


def _status(run):
    return ValidationRun.objects.get(pk=run.pk).status


@pytest.mark.sandbox
def test_every_stage_is_idempotent_and_nothing_is_dropped(
    queued_run, django_capture_on_commit_callbacks, settings
):
    run = queued_run
    settings.RUN_SHARD_SIZE = 9
    with django_capture_on_commit_callbacks(execute=False) as queued:
        infer(run.pk, deliveries=2)  # planner and every shard delivered twice
    assert [getattr(q, "name", None) for q in queued].count(task_names.RUN_SCORE) == 1
    assert _status(run) == Status.SCORING
    shards = list(RunShard.objects.filter(run=run))
    assert len(shards) == 2 and all(s.status == "done" and s.attempts == 1 for s in shards)
    predictions = Prediction.objects.filter(run=run)
    assert predictions.count() == 17  # one per case, the unreadable one included
    broken = predictions.get(case__case_id="BROKEN")
    assert broken.score is None and broken.error_category == "unreadable"
    refreshed = ValidationRun.objects.get(pk=run.pk)
    assert refreshed.cases_done == refreshed.cases_total == 17
    assert refreshed.sandboxed and refreshed.isolation.startswith("bwrap")

    with django_capture_on_commit_callbacks(execute=False):
        runs.run_score(run_id=run.pk)
        runs.run_score(run_id=run.pk)
    sections = {m.section: m.value for m in MetricResult.objects.filter(run=run)}
    assert set(sections) == {
        "primary",
        "subgroups",
        "fairness",
        "failures",
        "acceptance",
        "bootstrap",
        "calibration",
        "independence",
    }
    assert sections["failures"]["by_category"] == [{"category": "unreadable", "n": 1}]
    assert sections["primary"]["counts"]["n"] == 16
    assert {row["attribute"] for row in sections["subgroups"]} == {"sex", "manufacturer"}

    with django_capture_on_commit_callbacks(execute=False):
        runs.run_explain(run_id=run.pk)
        runs.run_explain(run_id=run.pk)
    assert Explanation.objects.filter(run=run).count() == 8  # readable positives
    assert Explanation.objects.filter(run=run, pointing_hit__isnull=False).count() == 8

    runs.run_report(run_id=run.pk)
    runs.run_report(run_id=run.pk)
    assert Report.objects.filter(run=run).count() == 1
    document = Report.objects.get(run=run).document
    execution = document["identity"]["run"]["execution"]
    assert (execution["shards"], execution["workers"], execution["redeliveries"]) == (2, 1, 0)
    assert execution["devices"] == ["cpu"]
    html = render_html(document)
    assert "2 on 1 worker (cpu)" in html and "Repeated deliveries" in html
    assert _status(run) == Status.AWAITING_SIGNATURE
    actions = [e.action for e in audit_events_for(run)]
    assert actions == [
        AuditAction.RUN_QUEUED,
        AuditAction.RUN_STARTED,
        AuditAction.RUN_INFERENCE_DONE,
        AuditAction.RUN_SCORED,
        AuditAction.RUN_EXPLAINED,
    ]


def test_a_cancelled_run_stops_before_the_next_batch(world, queued_run):
    runs.run_cancel(actor=world.reviewer, run=queued_run)
    runs.run_infer(run_id=queued_run.pk)
    assert not Prediction.objects.filter(run=queued_run).exists()
    assert _status(queued_run) == Status.CANCELLED


def test_a_missing_run_is_a_no_op(db):
    runs.run_infer(run_id=424242)
    runs.run_score(run_id=424242)


@pytest.mark.sandbox
def test_an_unexpected_error_fails_the_run_with_a_safe_message(world, queued_run):
    package = queued_run.package
    type(package).objects.filter(pk=package.pk).update(
        manifest={**package.manifest, "input": {"channels": "many"}}
    )
    with pytest.raises(ValueError):
        infer(queued_run.pk)
    run = ValidationRun.objects.get(pk=queued_run.pk)
    assert run.status == Status.FAILED
    assert run.error_public == PUBLIC_FAILURE["internal-error"]
    assert "Traceback" in run.error_detail and "input spec is missing" in run.error_detail
    assert audit_events_for(run)[-1].action == AuditAction.RUN_FAILED


@pytest.mark.sandbox
def test_the_report_document_carries_no_numbers_for_small_cells(queued_run, settings):
    """The issued report goes to the vendor: cells under min_cell_size keep only their label."""
    infer(queued_run.pk)
    for stage in (runs.run_score, runs.run_explain, runs.run_report):
        stage(run_id=queued_run.pk)
    document = Report.objects.get(run=queued_run).document
    sections = {m.section: m.value for m in MetricResult.objects.filter(run=queued_run)}
    small = [r for r in sections["subgroups"] if r["suppressed"]]
    assert small, "the fixture cohort must have a cell below min_cell_size"
    for row in document["subgroups"]:
        if row["suppressed"]:
            assert row == {"attribute": row["attribute"], "group": row["group"], "suppressed": True}


def _started_events(run):
    return [e for e in audit_events_for(run) if e.action == AuditAction.RUN_STARTED]


def test_a_redelivered_run_infer_writes_one_run_started(
    queued_run, django_capture_on_commit_callbacks
):
    from validation import tasks

    with django_capture_on_commit_callbacks(execute=False):
        tasks.run_infer(run_id=queued_run.pk)
        tasks.run_infer(run_id=queued_run.pk)
    assert _status(queued_run) == Status.RUNNING
    assert len(_started_events(queued_run)) == 1


def test_run_started_is_written_once_when_two_deliveries_interleave(
    queued_run, monkeypatch, django_capture_on_commit_callbacks
):
    """The interleaving of issue 14 (17): delivery A claims the run and, before it records
    RUN_STARTED, delivery B claims it too (the broker re-delivered the task); each then records
    the event. Delivery B runs here at the moment A records its event."""
    real_record = runs.audit_record
    redelivered: list[bool] = []

    def record_then_redeliver(**kwargs):
        if kwargs.get("action") == AuditAction.RUN_STARTED and not redelivered:
            redelivered.append(True)
            runs.run_infer(run_id=queued_run.pk)  # delivery B, before A's event
        return real_record(**kwargs)

    monkeypatch.setattr(runs, "audit_record", record_then_redeliver)
    with django_capture_on_commit_callbacks(execute=False):
        runs.run_infer(run_id=queued_run.pk)  # delivery A
    assert redelivered and _status(queued_run) == Status.RUNNING
    assert len(_started_events(queued_run)) == 1
