"""ONNX packages: built by the vendor-side builder, accepted at intake after a sandboxed smoke
test, run through onnxruntime in the runner, and reported without Grad-CAM (said plainly)."""

import warnings

import numpy as np
import pytest
import torch

from reports.models import Report
from tests.factories import protocol_document
from tests.run_helpers import granted_version
from validation.models import Explanation, Prediction, ValidationRun
from validation.packaging import build_package, default_manifest, read_package_contents
from validation.runner.client import ModelRunner, RunnerError
from validation.services import runs
from validation.services.packages import package_review, package_submit
from validation.synthetic.reference_model import TinyLesionNet

pytestmark = pytest.mark.sandbox  # every test here starts a sandboxed runner


@pytest.fixture(scope="module")
def onnx_model():
    torch.manual_seed(3)
    return TinyLesionNet().eval()


@pytest.fixture(scope="module")
def onnx_package(onnx_model, tmp_path_factory):
    manifest = default_manifest(name="Finder ONNX", version="1.0", gradcam_target_layer=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_package(
            model=onnx_model,
            example_input=torch.randn(2, 1, 64, 64),
            manifest=manifest,
            model_format="onnx",
            out_path=tmp_path_factory.mktemp("onnx") / "pkg.tar.gz",
        )


def test_onnx_runner_matches_the_eager_model(onnx_model, onnx_package, tmp_path):
    contents = read_package_contents(onnx_package)
    assert contents.model_format == "onnx"
    model_path = tmp_path / "model.onnx"
    model_path.write_bytes(contents.model_bytes)
    images = np.random.default_rng(0).standard_normal((40, 1, 64, 64)).astype(np.float32)
    with ModelRunner(model_path, threads=1) as runner:
        assert runner.info["backend"].startswith("onnxruntime")
        logits = runner.predict(images)
        with torch.no_grad():
            expected = onnx_model(torch.from_numpy(images)).numpy()
        np.testing.assert_allclose(logits, expected, atol=1e-5)
        with pytest.raises(RunnerError) as caught:
            runner.gradcam(images[:2], "block3", 0)
        assert caught.value.category == "unsupported"
        assert runner.predict(images[:2]).shape == (2, 1)  # still serving


def test_a_pt2_package_must_name_its_gradcam_layer():
    from validation.packaging import manifest_errors

    manifest = default_manifest(name="x", version="1", gradcam_target_layer=None)
    assert manifest_errors(manifest, model_format="onnx") == []
    assert any("Grad-CAM layer" in e for e in manifest_errors(manifest, model_format="pt2"))


@pytest.mark.django_db
def test_onnx_package_runs_end_to_end_without_explanations(
    world, onnx_package, cohort, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), open(onnx_package, "rb") as fh:
        package = package_submit(actor=world.vendor_user, upload=fh)
    package.refresh_from_db()
    assert package.smoke_load_seconds is not None  # timed by the smoke test on submission
    assert package.model_format == "onnx" and package.smoke_load_seconds > 0
    package = package_review(actor=world.reviewer, package=package, approve=True)
    version, protocol = granted_version(world, cohort, protocol_document())
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.run_start(
            actor=world.reviewer, package=package, dataset_version=version, protocol=protocol
        )
    run.refresh_from_db()
    assert run.status == ValidationRun.Status.AWAITING_SIGNATURE, run.error_detail
    assert Prediction.objects.filter(run=run, error_category="").count() == 16
    assert not Explanation.objects.filter(run=run).exists()
    explainability = Report.objects.get(run=run).document["explainability"]
    assert "ONNX" in explainability["unavailable"] and explainability["n_maps"] == 0
