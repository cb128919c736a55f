"""Five torchvision models no one here wrote, adapted by a vendor to the demo's 1 x 64 x 64 input
(`clients/python/examples/torchvision_models.py`, manifests beside it), through the real path
(issue 17, item 8): each is built by the package command from ``module:callable`` and passes
intake's sandboxed smoke test, Grad-CAM layer included; the ViT, whose Grad-CAM layer gives
tokens reshaped by its manifest's ``gradcam_reshape``, completes a run with maps. The full
240-case runs and their figures are `bench/torchvision_models.py`'s.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from blindspot_client.cli import main as blindspot

from reports.models import Report
from tests.factories import protocol_document
from tests.run_helpers import granted_version
from validation.models import Explanation, ModelPackage, Prediction, ValidationRun
from validation.services import runs
from validation.services.packages import package_review, package_submit

EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples"
MODELS = ["densenet121", "resnet50", "efficientnet_b0", "convnext_tiny", "vit_b_16"]

pytestmark = [pytest.mark.sandbox, pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Packages built on demand by the package command, once per module."""
    folder = tmp_path_factory.mktemp("torchvision")
    packages: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in packages:
            with pytest.MonkeyPatch.context() as patch:
                patch.syspath_prepend(str(EXAMPLES))
                out = folder / f"{name}.tar.gz"
                argv = [
                    "build",
                    *("--path", str(EXAMPLES)),
                    *("--model", f"torchvision_models:{name}"),
                    *("--manifest", str(EXAMPLES / "manifests" / f"{name}.json")),
                    *("--out", str(out)),
                ]
                # Untrained weights from a fixed seed: an unseeded ViT now and then gives a
                # case whose Grad-CAM is 0 everywhere (all-negative, cut by the ReLU).
                torch.manual_seed(20261208)
                assert blindspot(argv) == 0
            packages[name] = out
        return packages[name]

    return build


def _submit(world, path: Path, capture) -> ModelPackage:
    with capture(execute=True), open(path, "rb") as upload:
        package = package_submit(actor=world.vendor_user, upload=upload)
    package.refresh_from_db()
    return package


@pytest.mark.parametrize("name", MODELS)
def test_each_model_builds_and_passes_the_sandboxed_intake(
    name, built, world, django_capture_on_commit_callbacks
):
    package = _submit(world, built(name), django_capture_on_commit_callbacks)
    assert package.status == ModelPackage.Status.SUBMITTED, (
        package.refusal_reasons,
        package.refusal_detail,
    )
    manifest = json.loads((EXAMPLES / "manifests" / f"{name}.json").read_text())
    assert package.manifest == manifest
    assert package.smoke_load_seconds and package.smoke_load_seconds > 0


def test_the_vit_completes_a_run_with_gradcam_maps(
    built, world, cohort, django_capture_on_commit_callbacks
):
    package = _submit(world, built("vit_b_16"), django_capture_on_commit_callbacks)
    package = package_review(actor=world.reviewer, package=package, approve=True)
    version, protocol = granted_version(world, cohort, protocol_document())
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.run_start(
            actor=world.reviewer, package=package, dataset_version=version, protocol=protocol
        )
    run.refresh_from_db()
    assert run.status == ValidationRun.Status.AWAITING_SIGNATURE, run.error_detail
    assert run.explain_failure == {}
    assert Prediction.objects.filter(run=run, error_category="").count() == 16
    maps = [
        np.load(io.BytesIO(e.cam_npy), allow_pickle=False)
        for e in Explanation.objects.filter(run=run)
    ]
    assert len(maps) == 8  # every positive explained
    assert all(m.shape == (64, 64) and np.ptp(m) > 0 for m in maps)  # a 4 x 4 map, upsampled
    explainability = Report.objects.get(run=run).document["explainability"]
    assert explainability["n_maps"] == 8
    assert explainability["target_layer"] == "encoder.layers.encoder_layer_11.ln_1"
