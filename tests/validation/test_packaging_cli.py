"""The vendor-side builder command, run as a vendor runs it."""

import json
import subprocess
import sys
from pathlib import Path

import torch

from validation.packaging import default_manifest, manifest_errors, read_package
from validation.synthetic.reference_model import TinyLesionNet

ROOT = Path(__file__).resolve().parents[2]


def _build(tmp_path, manifest, *extra):
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(manifest))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "blindspot_client.package",
            "--model",
            "validation.synthetic.reference_model:TinyLesionNet",
            "--manifest",
            str(manifest_path),
            "--out",
            str(tmp_path / "pkg.tar.gz"),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_builds_a_valid_package_with_weights(tmp_path):
    torch.manual_seed(1)
    weights = tmp_path / "weights.pt"
    torch.save(TinyLesionNet().state_dict(), weights)
    manifest = default_manifest(name="Finder", version="2.0", gradcam_target_layer="block3")
    result = _build(tmp_path, manifest, "--weights", str(weights))
    assert result.returncode == 0, result.stderr
    read_manifest, model_bytes = read_package(tmp_path / "pkg.tar.gz")
    assert read_manifest == manifest and manifest_errors(read_manifest) == []
    assert model_bytes[:2] == b"PK"  # a torch.export archive


def test_reports_every_manifest_problem(tmp_path):
    manifest = default_manifest(name="Finder", version="2.0", gradcam_target_layer="block3")
    del manifest["threshold"]
    manifest["task"] = "mind-reading"
    result = _build(tmp_path, manifest)
    assert result.returncode == 2
    assert "threshold" in result.stderr and "task" in result.stderr
    assert not (tmp_path / "pkg.tar.gz").exists()


def test_refuses_a_layer_the_model_does_not_have(tmp_path):
    manifest = default_manifest(name="Finder", version="2.0", gradcam_target_layer="layer4.1")
    result = _build(tmp_path, manifest)
    assert result.returncode == 2 and "gradcam_target_layer" in result.stderr
