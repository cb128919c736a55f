"""`blindspot build` lists every problem at once (manifest at its paths, the callable, the
weights, the Grad-CAM layer, the output) with exit status 2, and builds a package intake
reads; `blindspot check` runs intake's checks and a local smoke test. Run as a vendor runs
them: the console script in a subprocess, the vendor's code on --path, no server checkout on
PYTHONPATH. Those that start torch in a subprocess are `slow` (make test-fast skips them)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from blindspot_client.package.manifest import default_manifest

from tests.support.packages import repacked
from validation.packaging import read_package_contents

BLINDSPOT = str(Path(sys.executable).with_name("blindspot"))
EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "python" / "examples"

VENDOR_CODE = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


def build():
    torch.manual_seed(0)
    return Tiny()


def not_a_model():
    return "a string"


NOT_CALLABLE = 3
"""


def blindspot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(cwd), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [BLINDSPOT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def vendor(tmp_path):
    """A vendor's folder: their model module, a manifest, and right and wrong weights."""
    code = tmp_path / "code"
    (code / "vendorpkg").mkdir(parents=True)
    (code / "vendorpkg" / "__init__.py").write_text("")
    (code / "vendorpkg" / "model.py").write_text(textwrap.dedent(VENDOR_CODE))
    sys.path.insert(0, str(code))
    try:
        from vendorpkg.model import build

        torch.save(build().state_dict(), tmp_path / "good.pt")
        wrong = build().state_dict()
        wrong.pop("head.bias")
        wrong["extra.weight"] = torch.zeros(1)
        wrong["conv.weight"] = torch.zeros(8, 1, 3, 3)
        torch.save(wrong, tmp_path / "wrong.pt")
    finally:
        sys.path.remove(str(code))
        sys.modules.pop("vendorpkg.model", None)
        sys.modules.pop("vendorpkg", None)
    manifest = default_manifest(name="Tiny", version="1.0", gradcam_target_layer="conv")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def build_args(vendor: Path, *, model="vendorpkg.model:build", manifest="manifest.json", extra=()):
    return (
        "build", "--path", str(vendor / "code"), "--model", model, "--manifest", manifest,
        "--out", "tiny.tar.gz", *extra,
    )  # fmt: skip


@pytest.mark.slow  # a subprocess that imports torch and exports a model
def test_a_good_model_builds_a_package_intake_reads_and_check_passes(vendor):
    done = blindspot(*build_args(vendor, extra=("--weights", "good.pt")), cwd=vendor)
    assert done.returncode == 0, done.stderr
    contents = read_package_contents(vendor / "tiny.tar.gz")
    assert contents.model_format == "pt2" and contents.manifest["name"] == "Tiny"
    checked = blindspot("check", "tiny.tar.gz", cwd=vendor)
    assert checked.returncode == 0, checked.stderr
    assert "passes the intake checks and the local smoke test" in checked.stdout
    assert "Grad-CAM layer 'conv': activations of shape (8, 4, 64, 64)" in checked.stdout


@pytest.mark.slow  # a subprocess that imports torch and exports a model
def test_every_problem_is_listed_at_once(vendor):
    manifest = json.loads((vendor / "manifest.json").read_text())
    del manifest["threshold"]
    manifest["input"]["scaling"]["method"] = "magic"
    (vendor / "bad.json").write_text(json.dumps(manifest))
    done = blindspot(
        *build_args(vendor, model="vendorpkg.model:nope", manifest="bad.json",
                    extra=("--weights", "absent.pt")),
        cwd=vendor,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0] == "cannot build the package (4 problem(s)):"
    assert any("manifest: (root): 'threshold' is a required property" in x for x in lines)
    assert any(x.strip().startswith("manifest: input/scaling") for x in lines)
    assert any("model: 'vendorpkg.model' has no attribute 'nope'" in x for x in lines)
    assert any("weights: absent.pt does not exist" in x for x in lines)
    assert not (vendor / "tiny.tar.gz").exists()


@pytest.mark.slow  # a subprocess that imports torch and exports a model
def test_weights_that_do_not_fit_name_their_keys_with_the_layer_and_output_problems(vendor):
    manifest = json.loads((vendor / "manifest.json").read_text())
    manifest["gradcam_target_layer"] = "head"
    manifest["output"]["positive_index"] = 2
    (vendor / "bad.json").write_text(json.dumps(manifest))
    done = blindspot(
        *build_args(vendor, manifest="bad.json", extra=("--weights", "wrong.pt")), cwd=vendor
    )
    assert done.returncode == 2
    text = done.stderr
    assert "weights: missing keys the model needs: head.bias" in text
    assert "weights: unexpected keys the model does not have: extra.weight" in text
    assert (
        "weights: shapes do not fit: conv.weight (8, 1, 3, 3) vs the model's (4, 1, 3, 3)" in text
    )
    assert (
        "gradcam_target_layer: the Grad-CAM target layer 'head' produces activations of "
        "shape (2, 1)" in text
    )
    assert "output/positive_index: 2 is outside the model's 1 output column(s)" in text


@pytest.fixture
def in_process(vendor, monkeypatch, capsys):
    """`blindspot` through `main(argv)` in this process (torch is imported already): for the
    refusals that never export a model."""
    from blindspot_client.cli import main

    monkeypatch.chdir(vendor)
    monkeypatch.setattr(sys, "path", list(sys.path))

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        try:
            status = main(list(args))
        finally:
            for name in ("vendorpkg.model", "vendorpkg"):
                sys.modules.pop(name, None)
        return status, capsys.readouterr().err

    return run


@pytest.mark.parametrize(
    "model,expected",
    [
        ("vendorpkg.model:not_a_model", "returned a str, not a torch nn.Module"),
        ("vendorpkg.model:NOT_CALLABLE", "is a int, not a callable"),
        ("no_such_module:build", "cannot import 'no_such_module'"),
        ("no-colon", "must look like 'package.module:callable'"),
    ],
)
def test_a_wrong_callable_is_named_clearly(vendor, in_process, model, expected):
    status, stderr = in_process(*build_args(vendor, model=model))
    assert status == 2 and expected in stderr


def test_a_missing_manifest_and_an_unreadable_weights_file(vendor, in_process):
    (vendor / "junk.pt").write_bytes(b"not a checkpoint")
    status, stderr = in_process(
        *build_args(vendor, manifest="absent.json", extra=("--weights", "junk.pt"))
    )
    assert status == 2
    assert "manifest: cannot read absent.json" in stderr
    assert "weights: cannot read junk.pt as a state dict" in stderr


@pytest.mark.slow  # a subprocess that imports torch and exports a model
def test_check_lists_intake_and_smoke_test_problems(vendor, package_file, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    refused = blindspot("check", str(junk), cwd=vendor)
    assert refused.returncode == 2 and "package:" in refused.stderr
    # A manifest whose positive column the model does not have: intake's reader accepts it,
    # the smoke test does not.
    wrong_column = repacked(package_file, tmp_path / "changed.tar", output__positive_index=1)
    smoke = blindspot("check", str(wrong_column), cwd=vendor)
    assert smoke.returncode == 2
    assert "output/positive_index: the model has 1 output column(s)" in smoke.stderr
    skipped = blindspot("check", "--no-smoke", str(wrong_column), cwd=vendor)
    assert skipped.returncode == 0, skipped.stderr


@pytest.mark.slow  # a subprocess that imports torch and exports a model
def test_the_shipped_example_builds(tmp_path):
    done = blindspot(
        "build", "--path", str(EXAMPLES), "--model", "examplenet.model:build",
        "--manifest", str(EXAMPLES / "examplenet" / "manifest.json"), "--out", "lf.tar.gz",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert read_package_contents(tmp_path / "lf.tar.gz").manifest["name"] == "ExampleNet"


def test_build_writes_the_predecessor_into_the_manifest(vendor, in_process):
    """`--supersedes` sets the manifest's `supersedes`, checked like any manifest field (the
    build stops before torch exports anything when it is wrong)."""
    status, stderr = in_process(*build_args(vendor, extra=("--supersedes", "1.0")))
    assert status == 2
    assert "manifest: supersedes: a version cannot succeed itself" in stderr
    status, stderr = in_process(*build_args(vendor, extra=("--supersedes", "0.9")))
    assert status == 0, stderr
    assert read_package_contents(vendor / "tiny.tar.gz").manifest["supersedes"] == "0.9"
