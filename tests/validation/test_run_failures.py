"""Failures after inference, and who pays for a failure (issue 14, item 13): an explanation
stage that fails leaves the validation standing (the report marks Explainability failed, with
the stage, the limit and its value); failures the service caused do not count against the
vendor's run caps, failures of the model do."""

import io

import pytest
import torch
from pypdf import PdfReader

from audit.models import AuditAction
from audit.selectors import audit_events_for
from reports.models import Report
from reports.rendering import render_pdf
from tests.factories import protocol_document
from tests.run_helpers import infer, run_setup, start_run
from validation.errors import ApplicationError
from validation.models import Explanation, Prediction, ValidationRun
from validation.packaging import build_package, default_manifest
from validation.services import runs
from validation.services.run_stages import run_fail

pytestmark = pytest.mark.django_db
Status = ValidationRun.Status
MEMORY_LIMIT_MIB = 1200


class _Deep(torch.nn.Module):
    """48 convolutions of 64 channels at 64x64: scoring 16 images fits in 1200 MiB (no graph is
    kept), Grad-CAM's forward-and-backward pass over 8 does not (every activation is kept), as a
    ViT's did at the production limit."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(1, 64, 3, padding=1)
        self.body = torch.nn.Sequential(
            *[
                torch.nn.Sequential(torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU())
                for _ in range(48)
            ]
        )
        self.head = torch.nn.Linear(64, 1)

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def deep_package(tmp_path_factory):
    torch.manual_seed(0)
    return build_package(
        model=_Deep(),
        example_input=torch.randn(2, 1, 64, 64),
        manifest=default_manifest(name="Deep", version="1.0", gradcam_target_layer="stem"),
        out_path=tmp_path_factory.mktemp("deep") / "deep.tar.gz",
    )


@pytest.mark.sandbox
def test_an_explanation_that_exceeds_the_memory_limit_still_yields_the_report(
    world, cohort, deep_package, settings
):
    settings.RUNNER_MEMORY_LIMIT_BYTES = MEMORY_LIMIT_MIB * 2**20
    settings.RUNNER_THREADS = 1
    run = start_run(world, package_path=deep_package, manifest=cohort, protocol=protocol_document())
    infer(run.pk)  # the shard's Grad-CAM pass fails; its cases fall back to plain scoring
    assert Prediction.objects.filter(run=run, error_category="").count() == 16
    runs.run_score(run_id=run.pk)
    runs.run_explain(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == Status.REPORTING and not run.error_public
    assert run.explain_failure == {
        "stage": "explaining",
        "category": "oom",
        "message": "The model exceeded the memory limit.",
        "limit": {"name": "memory (RLIMIT_DATA)", "value": f"{MEMORY_LIMIT_MIB} MiB"},
    }
    assert not Explanation.objects.filter(run=run).exists()
    assert audit_events_for(run)[-1].action == AuditAction.RUN_EXPLAINED
    assert audit_events_for(run)[-1].payload["failed"]["category"] == "oom"

    runs.run_report(run_id=run.pk)
    assert ValidationRun.objects.get(pk=run.pk).status == Status.AWAITING_SIGNATURE
    document = Report.objects.get(run=run).document
    assert document["explainability"]["failed"] == run.explain_failure
    assert document["primary"]["auc"]["estimate"] is not None  # the validation stands
    pdf = render_pdf(document)
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    assert (
        "Explainability FAILED in stage explaining: The model exceeded the memory limit. "
        f"Limit: memory (RLIMIT_DATA), {MEMORY_LIMIT_MIB} MiB." in text
    )


def test_service_failures_do_not_count_against_the_cap_model_failures_do(
    world, cohort, package_file
):
    package, version, protocol = run_setup(
        world,
        package_path=package_file,
        manifest=cohort,
        protocol=protocol_document(max_runs_per_vendor=1),
    )

    def start():
        return runs.run_start(
            actor=world.reviewer, package=package, dataset_version=version, protocol=protocol
        )

    for category in ("internal-error", "no-isolation", "grant-revoked"):
        run = start()
        run_fail(run_id=run.pk, category=category, detail="the service's fault")
        assert ValidationRun.objects.get(pk=run.pk).failure_category == category
    run = start()  # the service's failures above cost the vendor nothing
    run_fail(run_id=run.pk, category="oom", detail="the model's fault")
    with pytest.raises(ApplicationError, match="used this dataset version 1 time"):
        start()
