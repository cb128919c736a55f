"""Vendor-visible numbers are no data channel (issue 14, item 1).

A hostile model read 18 bytes of the worker's environment per run back through the calibration
bins of ``GET /runs/<id>/results/``, and the same bins showed a cell with n=1 (that case's label
disclosed) under a protocol whose minimum cell size was 10.

Here a real package, built with the vendor-side builder, carries a secret byte string: the
model sends each case to one of four calibration bins by a statistic of its pixels (which cases
land in which bin) and gives every case in bin ``j`` a logit whose lowest float32 bits are the
secret's byte ``j``. It runs through a real run (sandboxed inference on a synthetic DICOM cohort,
scoring, the report document, WeasyPrint). The validation team decodes the secret from its full
precision results; the vendor decodes nothing from its results or from the report's text, and
no bin it can see holds fewer cases than the protocol's minimum.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from rest_framework.test import APIClient

from reports.models import Report
from reports.rendering import render_pdf
from tests.factories import protocol_document
from tests.run_helpers import infer, start_run
from validation.models import MetricResult
from validation.protocol_document import protocol_errors, with_defaults
from validation.services import runs
from validation.stats.disclosure import DISPLAY_DECIMALS

pytestmark = [pytest.mark.django_db, pytest.mark.sandbox]

SECRET = b"K7#q"  # one byte per channel bin: nonzero and distinct
CHANNEL_CENTRES = (0.15, 0.35, 0.65, 0.85)  # bins 1, 3, 6 and 8 of 10
MIN_CELL = 8
PROTOCOL = protocol_document(
    min_cell_size=MIN_CELL,
    calibration={"bins": 10},
    bootstrap={"replicates": 200, "seed": 7, "method": "percentile"},
    explain={"cases": "none"},
)


def _base_bits(centre: float) -> int:
    base = np.float32(math.log(centre / (1 - centre)))
    return int(np.array([base], dtype=np.float32).view(np.int32)[0])


def _encoded_logits() -> list[float]:
    """Bin j's logit: the float32 logit of its centre, its bit pattern plus the secret's byte j."""
    bits = np.array(
        [_base_bits(c) + byte for c, byte in zip(CHANNEL_CENTRES, SECRET, strict=True)],
        dtype=np.int32,
    )
    return [float(v) for v in bits.view(np.float32)]


@pytest.fixture(scope="module")
def exfiltrating_package(tmp_path_factory):
    import torch
    from torch import nn

    from validation.packaging import build_package, default_manifest

    class Exfiltrator(nn.Module):
        logits: torch.Tensor

        def __init__(self, logits: list[float]) -> None:
            super().__init__()
            self.features = nn.Conv2d(1, 2, 3, padding=1)  # a Grad-CAM layer, as pt2 needs
            self.register_buffer("logits", torch.tensor(logits, dtype=torch.float32))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # Which bin a case lands in: a pixel statistic (in effect, a hash of the image).
            channel = torch.remainder(torch.floor(x.mean(dim=(1, 2, 3)) * 1000.0), 4.0).long()
            features = self.features(x).mean(dim=(1, 2, 3))
            return (self.logits[channel] + 0.0 * features).unsqueeze(1)

    torch.manual_seed(0)
    return build_package(
        model=Exfiltrator(_encoded_logits()),
        example_input=torch.randn(2, 1, 64, 64),
        manifest=default_manifest(name="Helpful", version="6.6.6", gradcam_target_layer="features"),
        out_path=tmp_path_factory.mktemp("exfil") / "model.tar.gz",
    )


@pytest.fixture(scope="module")
def exfil_cohort(tmp_path_factory):
    from validation.synthetic.cohort import generate_cohort

    return generate_cohort(
        tmp_path_factory.mktemp("exfil-cohort"), cases=36, seed=11, prevalence=0.5
    )


def _floats(value: Any) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _floats(item)
    elif isinstance(value, list):
        for item in value:
            yield from _floats(item)


def decode(values: list[float]) -> dict[int, int]:
    """The attacker's decoder: every number that might be a channel bin's mean score, back to
    its float32 logit, and the secret byte from its bits."""
    found: dict[int, int] = {}
    for value in values:
        if not 0.0 < value < 1.0:
            continue
        logit = np.array([math.log(value / (1 - value))], dtype=np.float32)
        bits = int(logit.view(np.int32)[0])
        for j, centre in enumerate(CHANNEL_CENTRES):
            byte = bits - _base_bits(centre)
            if 0 < byte < 256:
                found[j] = byte
    return found


def _pdf_text(pdf: bytes) -> str:
    done = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return done.stdout.decode("utf-8")


def _results(user, run) -> dict:
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(f"/api/v1/runs/{run.pk}/results/")
    assert response.status_code == 200, response.content
    return response.json()


def _assert_no_small_bin(bins: list[dict]) -> None:
    for b in bins:
        if b.get("suppressed"):
            assert set(b) == {"lower", "upper", "suppressed"}, b
        else:
            assert b["n"] >= MIN_CELL, b


def _assert_no_small_roc_step(roc: dict, counts: dict) -> None:
    """Between two points of the curve a vendor sees, at least the minimum number of cases."""
    above = [
        round(t * counts["n_pos"]) + round(f * counts["n_neg"])
        for f, t in zip(roc["fpr"], roc["tpr"], strict=True)
    ]
    assert above[0] == 0 and above[-1] == counts["n_pos"] + counts["n_neg"]
    steps = [b - a for a, b in zip(above, above[1:], strict=False)]
    assert steps and all(step >= MIN_CELL for step in steps), steps


@pytest.fixture
def finished_run(world, exfiltrating_package, exfil_cohort, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = start_run(
            world, package_path=exfiltrating_package, manifest=exfil_cohort, protocol=PROTOCOL
        )
        infer(run.pk)
        runs.run_score(run_id=run.pk)
        runs.run_explain(run_id=run.pk)
        runs.run_report(run_id=run.pk)
    return run


def test_the_exfiltrating_model_recovers_nothing_from_results_or_report(world, finished_run):
    run = finished_run
    stored = {m.section: m.value for m in MetricResult.objects.filter(run=run)}
    team_bins = stored["calibration"]["bins"]
    # The channel is real: the team's full-precision numbers carry the secret ...
    team = _results(world.reviewer, run)
    recovered = decode(list(_floats(team)))
    assert recovered, "the model's channel bins are empty: the test proves nothing"
    assert recovered == {j: SECRET[j] for j in recovered}
    assert len(recovered) == len(SECRET)
    # ... and the cohort has bins below the minimum, so suppression is exercised.
    with pytest.raises(AssertionError):
        _assert_no_small_roc_step(team["primary"]["roc"], team["primary"]["counts"])
    assert any(0 < b["n"] < MIN_CELL for b in team_bins)
    assert any(b["n"] >= MIN_CELL for b in team_bins)

    for user in (world.vendor_user, world.steward):
        results = _results(user, run)
        assert decode(list(_floats(results))) == {}
        for value in _floats(results):
            assert value == round(value, DISPLAY_DECIMALS), value
        _assert_no_small_bin(results["calibration"]["bins"])
        _assert_no_small_roc_step(results["primary"]["roc"], results["primary"]["counts"])
        shown = {b["lower"] for b in results["calibration"]["bins"] if not b["suppressed"]}
        assert shown, "nothing left to check"
        # Complementary suppression: never exactly one hidden non-empty bin (the totals would
        # give its n and n_pos away).
        hidden = [b for b in team_bins if round(b["lower"], DISPLAY_DECIMALS) not in shown]
        assert len(hidden) != 1

    document = Report.objects.get(run=run).document
    _assert_no_small_bin(document["calibration"]["bins"])
    _assert_no_small_roc_step(document["primary"]["roc"], team["primary"]["counts"])
    test_data = document["test_data"]
    cells = [*test_data["sites"], *test_data["scanners"]]
    cells += [
        row for rows in test_data["demographics"].values() if isinstance(rows, list) for row in rows
    ]
    assert any(row.get("suppressed") for row in cells)  # the cohort has small cells
    assert all(row.get("suppressed") or row["n"] >= MIN_CELL for row in cells), cells
    assert decode(list(_floats({k: document[k] for k in document if k != "identity"}))) == {}
    text = _pdf_text(render_pdf(document))
    printed = [float(token) for token in re.findall(r"(?<![\d.])\d+\.\d+(?![\d.])", text)]
    assert printed and decode(printed) == {}
    assert SECRET.decode() not in text


def test_protocols_cap_the_number_of_calibration_bins():
    errors = protocol_errors(with_defaults({**PROTOCOL, "calibration": {"bins": 21}}))
    assert len(errors) == 1 and errors[0].startswith("calibration/bins: at most 20 ")
    assert protocol_errors(with_defaults({**PROTOCOL, "calibration": {"bins": 20}})) == []
