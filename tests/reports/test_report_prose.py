"""What a reader takes from the report: the executive summary's estimates and findings, the
device description, p-values, calibration and localisation in words, appendices after the body.
Real WeasyPrint output read back with pypdf; needs no database."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from reports import prose
from reports.numbers import p_value
from reports.rendering import render_pdf
from tests.support.sample_document import sample_document


def _pages(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def _words(pages: list[str]) -> str:
    return " ".join(" ".join(pages).split())


def _failing_document() -> dict:
    """The sample with the demo's shape of results: an AUC criterion failing on its lower
    bound, a fairness criterion failing on its estimate, a TPR p-value far below 0.001,
    a miscalibrated model and a localisation chance baseline."""
    document = sample_document()
    document["summary"] = {
        "verdict": "fail",
        "criteria": [
            {
                "metric": "auc",
                "bound": "lower",
                "comparator": ">=",
                "value": 0.75,
                "observed": 0.738,
                "passed": False,
                "method": "DeLong (Sun & Xu 2014)",
                "interval": {"estimate": 0.804, "lower": 0.738, "upper": 0.87, "level": 0.95},
                "note": "",
            },
            {
                "attribute": "manufacturer",
                "metric": "tpr_difference",
                "bound": "estimate",
                "comparator": "<=",
                "value": 0.15,
                "observed": 0.767,
                "passed": False,
                "method": "Newcombe hybrid score (method 10)",
                "interval": {"estimate": 0.767, "lower": 0.479, "upper": 0.882, "level": 0.95},
                "note": "",
            },
            {
                "metric": "specificity",
                "bound": "estimate",
                "comparator": ">=",
                "value": 0.8,
                "observed": 0.812,
                "passed": True,
                "method": "Wilson score",
                "interval": {"estimate": 0.812, "lower": 0.76, "upper": 0.86, "level": 0.95},
                "note": "",
            },
        ],
    }
    document["fairness"][1].update(
        tpr_p_value=2.3e-7, tpr_p_adjusted=None, fpr_p_value=0.0132, fpr_p_adjusted=None
    )
    calibration = document["calibration"]
    calibration["intercept"].update(estimate=-2.11, lower=-2.6, upper=-1.62)
    calibration["slope"].update(estimate=0.62, lower=0.48, upper=0.76)
    document["explainability"]["localisation"] = {
        "n_with_roi": 72,
        "pointing_game": 0.681,
        "energy_in_roi": 0.153,
        "chance": 0.108,
    }
    document["audit_excerpt"][1]["action"] = "dataset_version.import_refused"
    document["audit_excerpt"][2]["action"] = "run.inference_done"
    for key in ("integrity", "signatures"):
        del document[key]
    return document


@pytest.fixture(scope="module")
def failing_pages() -> list[str]:
    return _pages(render_pdf(_failing_document()))


def test_the_summary_row_gives_estimate_interval_requirement_method_and_verdict(failing_pages):
    page_one = " ".join(failing_pages[0].split())
    assert (
        "AUC lower 95% bound \N{GREATER-THAN OR EQUAL TO} 0.750 0.804 (0.738\N{EN DASH}0.870)"
        in (page_one)
    )
    assert "DeLong (Sun & Xu 2014) FAIL" in page_one
    # The requirement is stated once: not again as the criterion's name.
    assert page_one.count("0.750") == 2  # the row and the finding sentence
    assert "Lower 95% bound of AUC" not in page_one


def test_page_one_states_the_findings_and_the_intended_use(failing_pages):
    page_one = " ".join(failing_pages[0].split())
    assert (
        "The lower 95% bound of the AUC, 0.738, is below the required 0.750; "
        "the point estimate is 0.804." in page_one
    )
    assert (
        "The point estimate of the manufacturer TPR difference, 0.767, is above the allowed "
        "0.150 (95% CI 0.479\N{EN DASH}0.882)." in page_one
    )
    assert (
        "The point estimate of the specificity, 0.812, meets the required 0.800, but its 95% "
        "CI, 0.760\N{EN DASH}0.860, includes 0.800: the result is borderline." in page_one
    )
    assert "Intended use (as declared by the vendor): PneumoDetect CXR is a computer-aided" in (
        page_one
    )


def test_the_device_is_described_from_its_manifest_without_python_reprs(failing_pages):
    words = _words(failing_pages)
    assert "1 Device description and intended use" in words
    assert "reads DX and CR images as 1-channel arrays of 224 \N{MULTIPLICATION SIGN} 224" in words
    assert (
        "Output labels no-pneumothorax, pneumothorax (softmax; positive score from output 1)"
        in (words)
    )
    assert "Pneumothorax on adult PA or AP chest radiographs" in words
    assert "Collection period 2019-01-01 to 2024-06-30" in words
    assert "Scanners GE Healthcare Definium 656, Carestream DRX-1" in words
    assert "['" not in " ".join(failing_pages) and "']" not in " ".join(failing_pages)


def test_p_values_below_a_thousandth_print_as_a_bound(failing_pages):
    words = _words(failing_pages)
    assert "manufacturer: two-proportion test of the TPR difference p < 0.001;" in words
    assert "of the FPR difference p = 0.013" in words
    assert "0.000" not in words.replace("0.0000", "")  # no "p = 0.000" anywhere


def test_calibration_is_explained_in_a_sentence(failing_pages):
    words = _words(failing_pages)
    assert (
        "The calibration intercept, \N{MINUS SIGN}2.110 (95% CI \N{MINUS SIGN}2.600 to "
        "\N{MINUS SIGN}1.620), is below 0: the model's scores are too high on average" in words
    )
    assert (
        "The calibration slope, 0.620 (95% CI 0.480\N{EN DASH}0.760), is below 1: the scores "
        "are too extreme: the model is over-confident" in words
    )


def test_localisation_is_set_against_its_chance_baseline(failing_pages):
    words = _words(failing_pages)
    assert "Chance baseline 0.108 (mean share of the map covered by the region of interest)" in (
        words
    )
    assert "the pointing game 0.681 is 6.3 times chance" in words


def test_appendices_follow_the_body(failing_pages):
    text = "\n".join(failing_pages)
    signatures = text.index("18 Signatures")
    appendices = [
        text.index(heading)
        for heading in (
            "Appendix A Environment and execution",
            "Appendix B Sandbox",
            "Appendix C Audit trail excerpt",
        )
    ]
    assert signatures < appendices[0] < appendices[1] < appendices[2]
    limitations = text.index("17 Limitations")
    # The sandbox's measured limits and the seccomp list are no longer in the body.
    assert "Limits measured inside at start" not in text[:signatures]
    assert "execveat" not in text[:signatures]
    appendix_b = _words([text[appendices[1] : appendices[2]]])
    assert "System calls refused (seccomp, EPERM)" in appendix_b and "execveat" in appendix_b
    assert limitations < signatures


def test_action_names_wrap_only_at_dots(failing_pages):
    text = "\n".join(failing_pages)
    lines = text[text.index("Appendix C Audit trail excerpt") :].splitlines()
    assert any(line.split()[-2:-1] == ["run.inference_done"] for line in lines if line.split())
    # A name too long for its column breaks after its dot and nowhere else.
    at = next(i for i, line in enumerate(lines) if line.endswith("dataset_version."))
    assert lines[at + 1] == "import_refused"


def test_audit_gaps_are_explained(failing_pages):
    words = _words(failing_pages)
    assert "Events 1042\N{EN DASH}1046 are not listed: 5 are about other objects" in words
    assert (
        "Events 1048\N{EN DASH}1051 are not listed: 3 are about other objects (other packages, "
        "datasets, runs or accounts); 1 number was never used" in words
    )


# --------------------------------------------------------------------------- the rules


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.0, "p < 0.001"), (0.000999, "p < 0.001"), (0.001, "p = 0.001"), (0.0456, "p = 0.046")],
)
def test_p_value_format(value, shown):
    assert p_value(value) == shown


def test_p_value_missing():
    assert p_value(None) == "p not computed"


def test_a_clear_pass_has_no_finding_and_a_criterion_without_a_value_says_why():
    criterion = {
        "metric": "sensitivity",
        "bound": "lower",
        "comparator": ">=",
        "value": 0.7,
        "observed": 0.74,
        "passed": True,
        "interval": {"estimate": 0.85, "lower": 0.74, "upper": 0.92, "level": 0.95},
    }
    assert prose.criterion_finding(criterion) is None
    assert not prose.borderline(criterion)
    undefined = {
        **criterion,
        "observed": None,
        "passed": False,
        "note": "sensitivity could not be computed",
    }
    assert prose.criterion_finding(undefined) == (
        "The criterion on the sensitivity could not be judged: sensitivity could not be computed."
    )


def test_calibration_whose_interval_includes_the_ideal_claims_no_direction():
    sentence = prose.calibration_meaning(
        {
            "intercept": {"estimate": -0.259, "lower": -0.599, "upper": 0.081, "level": 0.95},
            "slope": {"estimate": 1.2, "lower": 1.05, "upper": 1.35, "level": 0.95},
        }
    )
    assert sentence is not None
    assert "but its interval includes 0: the data show no systematic over- or under-" in sentence
    assert "is above 1: the scores are too moderate: the model is under-confident." in sentence


def test_no_calibration_fit_gives_no_sentence():
    assert prose.calibration_meaning({"intercept": {"estimate": None}}) is None
