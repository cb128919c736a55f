"""The runner's device and precision: real packages, real sandboxed workers.

This host has no GPU, so most tests show what a CPU host does with each setting (``auto`` falls
back to the CPU, ``cuda`` fails to load and says why, ``amp`` is ignored) and that the CPU answers
do not move. The Grad-CAM autocast path is checked in-process with CPU autocast, which takes the
same bfloat16 route a GPU does. The tests that need a GPU skip without one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from validation.packaging import build_package, default_manifest, read_package_contents
from validation.runner.client import ModelRunner, RunnerError
from validation.runner.explain import GradCamExplainer
from validation.synthetic.reference_model import GRADCAM_TARGET_LAYER, TinyLesionNet

pytestmark = pytest.mark.sandbox  # every test here starts a sandboxed runner

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def model_file(package_file, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("device") / "model.pt2"
    path.write_bytes(read_package_contents(package_file).model_bytes)
    return path


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(5).normal(0, 1, (10, 1, 64, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def cpu_answers(model_file, images) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(outputs, Grad-CAM outputs, CAMs) from a CPU runner, the reference for the others. AMP
    is asked for and must be ignored: the CPU answers are plain float32."""
    with ModelRunner(model_file, device="cpu", amp=True) as runner:
        assert (runner.info["device"], runner.info["amp"]) == ("cpu", False)
        return runner.predict(images), *runner.gradcam(images, GRADCAM_TARGET_LAYER)


@pytest.mark.parametrize("device", ["gpu", "CUDA", "cuda:0", "", None])
def test_an_unknown_device_is_refused_up_front(model_file, device):
    with pytest.raises(ValueError, match="device must be one of"):
        ModelRunner(model_file, device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a host without a GPU")
def test_cuda_without_a_gpu_is_load_failed_and_says_why(model_file):
    runner = ModelRunner(model_file, device="cuda")
    with pytest.raises(RunnerError) as caught:
        runner.start()
    assert caught.value.category == "load-failed"
    assert "no CUDA GPU is available" in caught.value.detail
    assert not runner.running


@pytest.mark.skipif(torch.cuda.is_available(), reason="auto means cuda on a GPU host")
def test_auto_on_a_cpu_host_gives_exactly_the_cpu_answers(model_file, images, cpu_answers):
    outputs, cam_outputs, cams = cpu_answers
    with ModelRunner(model_file, device="auto", amp=True, threads=2) as runner:
        info = runner.info
        assert (info["device"], info["device_name"], info["threads"]) == ("cpu", "cpu", 2)
        assert info["amp"] is False  # asked for, effective only on a GPU
        assert runner.isolation is not None  # set once started
        assert "GPU" not in runner.isolation  # no device nodes to bind on this host
        np.testing.assert_array_equal(runner.predict(images), outputs)
        got_outputs, got_cams = runner.gradcam(images, GRADCAM_TARGET_LAYER)
    np.testing.assert_array_equal(got_outputs, cam_outputs)
    np.testing.assert_array_equal(got_cams, cams)


def test_gradcam_under_bfloat16_autocast_gives_float32_maps_close_to_float32():
    # pytorch-grad-cam turns activations into numpy, which has no bfloat16: the explainer must
    # hand it float32. CPU autocast takes the same route as CUDA autocast on a GPU.
    torch.manual_seed(0)
    model = torch.export.unflatten(
        torch.export.export(TinyLesionNet().eval(), (torch.zeros(2, 1, 64, 64),))
    )
    images = torch.randn(2, 1, 64, 64)
    outputs, cams = GradCamExplainer(model)(images, GRADCAM_TARGET_LAYER, 0)
    amp_outputs, amp_cams = GradCamExplainer(
        model, autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    )(images, GRADCAM_TARGET_LAYER, 0)
    assert amp_outputs.dtype == torch.bfloat16  # the forward pass did run in bfloat16
    assert amp_cams.dtype == np.float32 and amp_cams.shape == cams.shape
    np.testing.assert_allclose(amp_cams, cams, atol=0.05)
    np.testing.assert_allclose(amp_outputs.float(), outputs, atol=0.05)


def test_onnx_asked_for_cuda_runs_on_the_cpu_and_says_so(tmp_path):
    torch.manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        package = build_package(
            model=TinyLesionNet().eval(),
            example_input=torch.randn(2, 1, 64, 64),
            manifest=default_manifest(name="Finder ONNX", version="1", gradcam_target_layer=None),
            model_format="onnx",
            out_path=tmp_path / "pkg.tar.gz",
        )
    model = tmp_path / "model.onnx"
    model.write_bytes(read_package_contents(package).model_bytes)
    with ModelRunner(model, device="cuda", amp=True) as runner:
        info = runner.info
        assert runner.predict(np.zeros((2, 1, 64, 64), np.float32)).shape == (2, 1)
    assert (info["device"], info["device_name"], info["amp"]) == ("cpu", "cpu", False)
    assert "CPU" in info["note"]
    with ModelRunner(model, device="auto") as runner:
        assert runner.info["device"] == "cpu" and "note" not in runner.info


@needs_gpu
@pytest.mark.parametrize("amp", [False, True])
def test_cuda_answers_are_close_to_the_cpu_ones(model_file, images, cpu_answers, amp):
    outputs, cam_outputs, cams = cpu_answers
    # float32 on a GPU still differs in the last bits (TF32 convolutions); AMP by far more.
    tolerance = 0.05 if amp else 0.01
    scale = max(1.0, float(np.abs(outputs).max()))
    with ModelRunner(model_file, device="cuda", amp=amp) as runner:
        assert (runner.info["device"], runner.info["amp"]) == ("cuda", amp)
        assert runner.info["device_name"] != "cpu"
        assert runner.isolation is not None  # set once started
        if runner.isolation.startswith("bwrap"):
            assert "GPU device nodes" in runner.isolation
        got = runner.predict(images)
        got_outputs, got_cams = runner.gradcam(images, GRADCAM_TARGET_LAYER)
    assert got.dtype == got_outputs.dtype == got_cams.dtype == np.float32
    np.testing.assert_allclose(got, outputs, atol=tolerance * scale)
    np.testing.assert_allclose(got_outputs, cam_outputs, atol=tolerance * scale)
    assert np.abs(got_cams - cams).mean() < tolerance
