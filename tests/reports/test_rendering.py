"""Report rendering: real WeasyPrint output, read back with pypdf. Needs no database."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader
from pypdf.generic import ArrayObject, DictionaryObject

from reports import plots
from reports.rendering import (
    DataOnlyURLFetcher,
    ReportRenderError,
    URLRefused,
    canonical_json,
    content_sha256,
    document_sha256,
    render_html,
    render_pdf,
)
from tests.support.report_sections import SECTION_HEADINGS
from tests.support.sample_document import sample_document

REPO_ROOT = Path(__file__).resolve().parents[2]


def _text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def _pdf_str(dictionary: DictionaryObject, key: str) -> str:
    """A text entry of a PDF dictionary (pypdf types every entry as a bare PdfObject)."""
    value = dictionary[key]
    assert isinstance(value, str), (key, value)
    return value


def _flat(pages: list[str]) -> str:
    # Long values wrap across lines; compare without the line breaks the layout added.
    return "".join("".join(pages).split())


@pytest.fixture(scope="module")
def sample() -> dict:
    return sample_document()


@pytest.fixture(scope="module")
def sample_pdf(sample) -> bytes:
    return render_pdf(sample)


# --------------------------------------------------------------------------- content


def test_every_section_heading_appears(sample_pdf):
    text = "\n".join(_text(sample_pdf))
    for heading in SECTION_HEADINGS:
        assert heading in text, heading


def test_key_numbers_appear(sample, sample_pdf):
    pages = _text(sample_pdf)
    text, flat = "\n".join(pages), _flat(pages)
    assert sample["identity"]["package"]["sha256"] in flat
    assert sample["identity"]["dataset"]["merkle_root"] in flat
    assert sample["integrity"]["document_sha256"] in flat
    assert "0.912 (95% CI 0.871\N{EN DASH}0.953)" in text  # AUC with its CI
    assert "0.850 (95% CI 0.739\N{EN DASH}0.919)" in text  # sensitivity
    assert "TP 51" in text and "TN 119" in text
    # A subgroup row: Siemens, n = 66, 21 positive / 45 negative, sensitivity 18/21 (Wilson).
    words = " ".join(text.split())
    assert (
        "manufacturer Siemens Healthineers 66 21 / 45 0.318 0.857 (0.654\N{EN DASH}0.950)" in words
    )
    assert "suppressed (n < 10)" in text
    assert "Dr. Amara Okafor" in text and "QA approver" in text


def test_title_page_and_running_header_footer(sample_pdf):
    pages = _text(sample_pdf)
    assert "PASS" in pages[0]
    assert "Identity and integrity" in pages[0]
    assert "WITHOUT sandbox" not in pages[0]
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page
        assert "Report R-000001 \N{MIDDLE DOT} version 1" in page


def test_pdf_metadata_carries_id_hash_and_signatures(sample, sample_pdf):
    reader = PdfReader(io.BytesIO(sample_pdf))
    info = reader.metadata
    assert info is not None  # the document information dictionary is written
    digest = sample["integrity"]["document_sha256"]
    assert info["/Title"] == "Blindspot validation report R-000001 version 1"
    assert digest in _pdf_str(info, "/Subject")
    assert digest in _pdf_str(info, "/Keywords")
    assert "Jonas Lindqvist" in _pdf_str(info, "/Keywords")
    assert info["/blindspotreportid"] == "R-000001"
    assert info["/blindspotdocumentsha256"] == digest
    assert info["/blindspotservicesignature"] == sample["integrity"]["service_signature"]
    assert "Dr. Amara Okafor" in _pdf_str(info, "/blindspotsignatures")
    assert _pdf_str(info, "/CreationDate").startswith("D:20261123100000")
    assert info["/ModDate"] == info["/CreationDate"]
    ids = reader.trailer["/ID"]
    assert isinstance(ids, ArrayObject)
    assert str(ids[0]) == content_sha256(sample)[:32]


def test_sample_integrity_hashes(sample, sample_pdf):
    without_integrity = {k: v for k, v in sample.items() if k != "integrity"}
    assert sample["integrity"]["document_sha256"] == document_sha256(without_integrity)
    assert sample["integrity"]["content_sha256"] == content_sha256(sample)
    text = "\n".join(_text(sample_pdf))
    assert "Covers this document, signatures included, without its integrity block." in text
    assert "Does NOT match" not in text


def test_tampered_document_is_flagged_in_the_pdf():
    document = sample_document()
    document["primary"]["auc"]["estimate"] = 0.99
    text = "\n".join(_text(render_pdf(document)))
    assert "Does NOT match this document's content." in text


def test_unsandboxed_warning_on_page_one():
    # With 5,000-character names too: nothing a vendor controls may push it off page 1.
    document = _hostile_document()
    document["identity"]["sandbox"] = {"isolation": "none", "enabled": False}
    pages = _text(render_pdf(document))
    assert "Model executed WITHOUT sandbox isolation" in pages[0]
    assert "Page 1 of" in pages[0] and "Report R-000001" in pages[0]


def test_missing_optional_sections_still_render():
    document = sample_document()
    for key in ("explainability", "fairness", "subgroups", "failures", "limitations", "primary"):
        del document[key]
    del document["signatures"]
    del document["integrity"]
    text = "\n".join(_text(render_pdf(document)))
    for heading in SECTION_HEADINGS:
        assert heading in text, heading
    assert "Not signed" in text


def test_undefined_statistics_and_alternative_shapes_render():
    # Shapes reports.document produces for small or one-class data: undefined intervals are
    # None, exclusions come as failure categories, fairness may be undefined with notes.
    document = sample_document()
    document["primary"]["metrics"]["ppv"] = {
        "estimate": None,
        "lower": None,
        "upper": None,
        "method": "Wilson score",
    }
    document["subgroups"][0].update(sensitivity=None, auc=None, notes=["no positives"])
    document["fairness"][0].update(
        equalized_odds_difference=None,
        tpr_difference=None,
        notes=["disparities undefined: 1 group(s) with n >= 10 and both classes"],
    )
    document["test_data"]["exclusions"] = [{"category": "decode_error", "n": 2}]
    document["test_data"]["demographics"]["race"] = [{"group": "unknown", "n": 200}]
    document["test_data"]["demographics"]["age"] = None
    document["explainability"].update(localisation=None, exemplars_allowed=False, exemplars=[])
    document["protocol"]["failure_policy"] = {"on_decode_error": "exclude", "report": True}
    text = " ".join("\n".join(_text(render_pdf(document))).split())
    assert "PPV \N{EM DASH}" in text
    assert "sex F: no positives." in text
    assert "disparities undefined" in text
    assert "decode_error 2" in text
    assert "Race" in text
    assert "Not assessed" in text
    assert "on_decode_error: exclude; report: yes" in text


def test_exemplars_withheld_without_grant(sample):
    document = sample_document()
    document["explainability"]["exemplars_allowed"] = False
    html = render_html(document)
    assert "data:image/png" not in html
    assert "does not permit images" in html


def test_exemplars_show_outcome_score_reference_and_group_under_the_stated_rule(sample):
    text = " ".join("\n".join(_text(render_pdf(sample))).split())
    assert " ".join(sample["explainability"]["exemplar_rule"].split()) in text
    assert "False positive, score 0.957 reference negative sex M" in text
    assert "False negative, score 0.188 reference positive (no region annotated) sex M" in text
    assert "True positive, score 0.912 reference positive sex F" in text


def test_an_issued_report_with_exemplars_of_the_old_shape_still_renders():
    """Reports issued before the rule printed a label per exemplar and no rule."""
    document = sample_document()
    x = document["explainability"]
    for key in ("exemplar_rule", "exemplar_attribute", "exemplars_without_map"):
        x.pop(key)
    x["exemplars"] = [
        {"label": "Exemplar 1 (reference: positive)", "image_png": x["exemplars"][0]["image_png"]}
    ]
    text = " ".join("\n".join(_text(render_pdf(document))).split())
    assert "Exemplar 1 (reference: positive)" in text
    assert "Exemplars are chosen by a fixed rule" not in text


def test_exemplars_allowed_but_without_maps_say_so():
    document = sample_document()
    document["explainability"].update(exemplars=[], exemplars_without_map=3)
    html = render_html(document)
    assert "No exemplar is shown" in html and "does not permit images" not in html
    document = sample_document()
    document["explainability"]["exemplars_without_map"] = 2
    assert "2 chosen case(s) have no Grad-CAM map" in render_html(document)


def test_outcomes_without_any_case_are_named():
    document = sample_document()
    document["explainability"]["exemplar_outcomes_absent"] = ["TP", "FP"]
    html = render_html(document)
    assert "No true positive or false positive at the operating point: none to show." in html
    assert "none to show" not in render_html(sample_document())


def test_exemplar_with_non_data_uri_is_dropped():
    document = sample_document()
    document["explainability"]["exemplars"] = [
        {"label": "x", "image_png": "file:///etc/hostname"},
    ]
    html = render_html(document)
    assert "file:///etc/hostname" not in html
    render_pdf(document)


# --------------------------------------------------------------------------- reproducibility


def test_same_document_gives_identical_pdf_in_separate_processes(tmp_path):
    script = (
        "import sys\n"
        "from reports.rendering import render_pdf\n"
        "from tests.support.sample_document import sample_document\n"
        "sys.stdout.buffer.write(render_pdf(sample_document()))\n"
    )
    outputs = []
    for seed in ("1", "2"):  # different hash seeds shake out set/dict-order dependence
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
            timeout=180,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        outputs.append(result.stdout)
    assert outputs[0].startswith(b"%PDF-")
    assert hashlib.sha256(outputs[0]).hexdigest() == hashlib.sha256(outputs[1]).hexdigest()


def test_key_order_does_not_change_the_pdf(sample, sample_pdf):
    def reverse(value):
        if isinstance(value, dict):
            return {k: reverse(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reverse(item) for item in value]
        return value

    assert render_pdf(reverse(sample)) == sample_pdf


def test_plots_are_deterministic():
    y, x = np.mgrid[0:32, 0:32]
    image, cam = np.sin(x / 5.0), np.exp(-((x - 10) ** 2 + (y - 20) ** 2) / 40.0)
    assert plots.exemplar_png(image, cam, roi_box=[2, 3, 9, 12]) == plots.exemplar_png(
        image, cam, roi_box=[2, 3, 9, 12]
    )
    assert plots.roc_plot([0, 0.2, 1], [0, 0.7, 1], 0.8) == plots.roc_plot(
        [0, 0.2, 1], [0, 0.7, 1], 0.8
    )
    png = base64.b64decode(plots.exemplar_png(image, cam).split(",", 1)[1])
    assert png.startswith(b"\x89PNG") and b"tIME" not in png and b"tEXt" not in png
    svg = base64.b64decode(plots.roc_plot([0, 0.2, 1], [0, 0.7, 1], 0.8).split(",", 1)[1])
    assert b"<dc:date>" not in svg


def test_forest_plot_omits_suppressed_rows(sample):
    rows = [row for row in sample["subgroups"] if not row["suppressed"]]
    assert plots.forest_plot(sample["subgroups"]) == plots.forest_plot(rows)
    assert plots.forest_plot([row for row in sample["subgroups"] if row["suppressed"]]) is None


# --------------------------------------------------------------------------- hostile input

HOSTILE = {
    "img": '<img src="file:///etc/passwd">',
    "link": '<link rel="attachment" href="file:///etc/hostname">',
    "script": "<script>alert(1)</script>",
    "rlo": "scan\u202egpj.exe",
}
CANARY = "blindspot-canary-7f3e9a1c5d"


@pytest.fixture(scope="module")
def canary_url(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("canary") / "secret.txt"
    path.write_text(CANARY)
    return path.as_uri()


def _hostile_document(canary_url: str = "file:///etc/hostname") -> dict:
    document = sample_document()
    long = "A" * 5000
    canary = f'<img src="{canary_url}"><link rel="attachment" href="{canary_url}">'
    document["identity"]["package"]["name"] = HOSTILE["img"] + HOSTILE["rlo"] + long
    document["identity"]["dataset"]["name"] = HOSTILE["link"] + canary + long
    document["intended_use"]["text"] = HOSTILE["script"] + " " + HOSTILE["link"] + long
    return document


@pytest.fixture(scope="module")
def hostile_pdf(canary_url) -> bytes:
    return render_pdf(_hostile_document(canary_url))


def test_hostile_strings_render_as_literal_text(hostile_pdf):
    flat = _flat(_text(hostile_pdf))
    assert _flat([HOSTILE["img"]]) in flat
    assert _flat([HOSTILE["link"]]) in flat
    assert HOSTILE["script"] in flat
    assert "A" * 1000 in flat
    # The override is shown, not applied.
    assert "scan[U+202E]gpj.exe" in flat
    assert "\u202e" not in flat


def test_hostile_strings_embed_no_attachment_or_file(hostile_pdf):
    reader = PdfReader(io.BytesIO(hostile_pdf))
    root = reader.trailer["/Root"]
    assert isinstance(root, DictionaryObject)  # the document catalog
    assert "/Names" not in root  # where embedded files would be listed
    assert b"/EmbeddedFile" not in hostile_pdf and b"/Filespec" not in hostile_pdf
    text = "".join(_text(hostile_pdf))
    secrets = [CANARY, Path("/etc/passwd").read_text().splitlines()[0]]
    hostname = Path("/etc/hostname").read_text().strip()
    if len(hostname) >= 6:  # a two-letter hostname would match by chance
        secrets.append(hostname)
    for secret in secrets:
        assert secret.encode() not in hostile_pdf
        assert secret not in text


def test_html_escapes_markup():
    html = render_html(_hostile_document())
    assert '<img src="file:' not in html and "<script>" not in html
    assert '<link rel="attachment"' not in html
    assert "&lt;img src=&quot;file:///etc/passwd&quot;&gt;" in html


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/hostname",
        "FILE:///etc/passwd",
        "http://127.0.0.1/",
        "https://example.org/x.png",
        "ftp://example.org/x",
        "report.css",
        "/etc/hostname",
    ],
)
def test_url_fetcher_refuses_everything_but_data(url):
    with pytest.raises(URLRefused):
        DataOnlyURLFetcher()(url)


def test_url_fetcher_serves_data_urls():
    response = DataOnlyURLFetcher()("data:image/png;base64," + base64.b64encode(b"xyz").decode())
    assert response.read() == b"xyz"
    assert response.content_type == "image/png"
    assert DataOnlyURLFetcher()("data:,hello%20world").read() == b"hello world"


def test_a_file_url_reaching_weasyprint_aborts_the_render(monkeypatch):
    from reports import rendering

    original = rendering.render_html

    def with_file_image(document):
        return original(document).replace("</body>", '<img src="file:///etc/hostname"></body>')

    monkeypatch.setattr(rendering, "render_html", with_file_image)
    with pytest.raises(ReportRenderError):
        rendering.render_pdf(sample_document())


# --------------------------------------------------------------------------- canonical JSON


def test_canonical_json_is_stable_and_compact():
    a = {"b": 1, "a": [1.0, 0.1 + 0.2, "é"], "c": {"z": None, "y": True}}
    b = {"c": {"y": True, "z": None}, "a": [1.0, 0.30000000000000004, "é"], "b": 1}
    assert canonical_json(a) == canonical_json(b)
    assert canonical_json(a) == '{"a":[1.0,0.3,"é"],"b":1,"c":{"y":true,"z":null}}'.encode()
    assert document_sha256(a) == hashlib.sha256(canonical_json(a)).hexdigest()


def test_canonical_json_normalises_numbers():
    assert canonical_json({"x": -0.0}) == canonical_json({"x": 0.0})
    assert canonical_json({"x": np.float64(0.1) + np.float64(0.2)}) == b'{"x":0.3}'
    assert canonical_json({"x": np.int64(3)}) == b'{"x":3}'
    assert canonical_json({"x": 123456789.0123456}) == b'{"x":123456789.0}'


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_canonical_json_rejects_non_finite(bad):
    with pytest.raises(ValueError):
        canonical_json({"metrics": [{"auc": bad}]})


def test_canonical_json_rejects_non_json_values():
    with pytest.raises(ValueError):
        canonical_json({1: "integer key"})
    with pytest.raises(ValueError):
        canonical_json({"x": {1, 2}})


def test_render_refuses_nan_document():
    document = sample_document()
    document["primary"]["auc"]["estimate"] = math.nan
    with pytest.raises(ValueError):
        render_pdf(document)


def test_failure_section_distinguishes_no_failures_from_missing_data():
    import pypdf

    document = sample_document()
    document["failures"] = []
    text = "".join(
        p.extract_text() for p in pypdf.PdfReader(io.BytesIO(render_pdf(document))).pages
    )
    assert "No failures: every case was read and scored" in text
    document["failures"] = [{"category": "unreadable", "n": 3}]
    text = "".join(
        p.extract_text() for p in pypdf.PdfReader(io.BytesIO(render_pdf(document))).pages
    )
    assert "unreadable" in text and "never dropped" in text


def test_worst_case_disparity_intervals_and_p_values_are_printed(sample):
    document = copy.deepcopy(sample)
    row = document["fairness"][0]
    row["equalized_odds_difference_interval"] = {
        "estimate": row["equalized_odds_difference"],
        "lower": 0.0123,
        "upper": 0.2345,
        "method": "Stratified bootstrap, percentile (B=2000, seed=1)",
        "level": 0.95,
    }
    row.update(tpr_p_value=0.0456, tpr_p_adjusted=0.0912, multiplicity="holm", exploratory=True)
    flat = _flat(_text(render_pdf(document)))
    assert "(0.012–0.234)" in flat
    assert "p=0.046(holm-adjustedp=0.091)" in flat


# --------------------------------------------------------------------------- findings (issue 18)


def test_findings_discussion_and_limitations_are_printed(sample, sample_pdf):
    words = " ".join(" ".join(_text(sample_pdf)).split())
    findings = words[words.index("15 Findings") : words.index("16 Discussion and conclusion")]
    # The sample's safety finding, stated in a sentence from its own numbers.
    assert (
        "Sensitivity for manufacturer Philips is 0.571 (95% CI 0.326\N{EN DASH}0.786; 14 "
        "positive cases), below the overall 0.850 and below the required 0.700; its interval "
        "lies wholly below the overall estimate." in findings
    )
    assert "Not judgeable moderate Too few cases to judge" in findings  # Agfa, suppressed
    discussion = words[words.index("16 Discussion and conclusion") : words.index("17 Limitations")]
    assert sample["discussion"]["conclusion"] in discussion
    assert "The main safety-relevant subgroup finding: sensitivity for manufacturer Philips" in (
        discussion
    )
    limitations = words[words.index("17 Limitations") : words.index("18 Signatures")]
    for item in sample["limitations"]:
        assert item in limitations
    # Page 1 states the subgroup finding too.
    page_one = " ".join(_text(sample_pdf)[0].split())
    assert "Sensitivity for manufacturer Philips is 0.571" in page_one


def test_a_not_judgeable_criterion_and_verdict_print_so_and_old_reports_still_render():
    document = sample_document()
    criterion = document["summary"]["criteria"][2]
    criterion.update(passed=None, judgeable=False, reason="the AUC could not be computed")
    document["summary"]["verdict"] = "not judgeable"
    for key in ("findings", "discussion", "integrity", "signatures"):
        del document[key]  # as in a report issued before the findings existed
    pages = _text(render_pdf(document))
    page_one = " ".join(pages[0].split())
    assert "Overall verdict NOT JUDGEABLE" in page_one
    assert "DeLong (Sun & Xu 2014) NOT JUDGEABLE" in page_one
    assert "The criterion on the AUC could not be judged: the AUC could not be computed." in (
        page_one
    )
    words = " ".join(" ".join(pages).split())
    assert "the findings were not generated for reports issued before they existed" in words
    assert "the discussion was not generated for reports issued before it existed" in words
