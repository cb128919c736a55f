"""Hostile strings from a dataset or a manifest reach the report's plots as literal text (issue 14,
item 7): a subgroup value ``White $\\undefinedmacro$`` once made the QA signature 500 (matplotlib
parsed it as mathtext), and ``$5 and $6`` rendered as math.

The only text on a report figure that comes from outside the service is the forest plot's
labels: ``<subgroup attribute>: <group value>`` (attribute names from the protocol, values from
the dataset manifest). The ROC and calibration figures carry numbers and fixed captions only.
Each hostile string goes through the forest plot as an attribute name and as a group value, is
read back from the SVG the plot writes, and then the whole report renders to PDF (real
WeasyPrint) where the strings are read back with pdftotext."""

from __future__ import annotations

import base64
import copy
import subprocess
import xml.etree.ElementTree as ET

import pytest

from reports.plots import MAX_LABEL_CHARS, forest_plot
from reports.rendering import render_pdf
from tests.support.sample_document import sample_document

HOSTILE = [
    "White $\\undefinedmacro$",
    "$5 and $6",
    "$\\frac{1}{0}$ \\\\ C:\\temp\\new \\n",
    "a_b^c {x} #1 %2 &3 ~4",
    "\\textbf{bold} \\begin{document}",
    "L" * 400 + " end",
    "שלום עולם",
    "مرحبا بالعالم",
    "日本語 Ünïcödé Ω ✓",
    "<script>alert(1)</script>",
    "<b>&amp; &lt;i&gt;</b>",
    "{0} {name} {!r} %s %d %%",
    "line one\nline two",
    "bell\x07 escape\x1b delete\x7f",
]

_CONTROLS = {"\x07": "[U+0007]", "\x1b": "[U+001B]", "\x7f": "[U+007F]"}


def _visible(value: str) -> str:
    """How a string is shown (control characters as code points) without whitespace: layout
    adds and removes line breaks and spaces, never other characters."""
    for char, shown in _CONTROLS.items():
        value = value.replace(char, shown)
    return "".join(value.split())


def _svg_text(data_uri: str) -> list[str]:
    svg = base64.b64decode(data_uri.split(",", 1)[1])
    root = ET.fromstring(svg)  # noqa: S314 - our own matplotlib output, no DTD or entities
    return ["".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text")]


def _row(attribute: str, group: str) -> dict:
    row = copy.deepcopy(sample_document()["subgroups"][0])
    return {**row, "attribute": attribute, "group": group}


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_every_forest_plot_label_is_literal_text(hostile):
    figure = forest_plot([_row(hostile, "F"), _row("sex", hostile)])
    assert figure is not None
    labels = [_visible(text) for text in _svg_text(figure)]
    for label in (f"{hostile}: F", f"sex: {hostile}"):
        expected = _visible(label)
        if len(label) > MAX_LABEL_CHARS:  # shortened with an ellipsis; the table prints it all
            expected = _visible(label[: MAX_LABEL_CHARS - 10])
            assert any(text.startswith(expected) and text.endswith("…") for text in labels)
        else:
            assert expected in labels, (label, labels)


@pytest.fixture(scope="module")
def hostile_report() -> tuple[dict, str]:
    document = sample_document()
    document["subgroups"] = [
        row for i, s in enumerate(HOSTILE) for row in (_row(s, f"g{i}"), _row(f"a{i}", s))
    ]
    document["fairness"][0]["attribute"] = HOSTILE[0]
    return document, "".join(pdf_text(render_pdf(document)).split())


def pdf_text(pdf: bytes) -> str:
    """The PDF's text as poppler's pdftotext reads it (scripts/system-packages.txt; pypdf
    garbles CJK and Hebrew from WeasyPrint's subset fonts)."""
    done = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-", "-"], input=pdf, capture_output=True, check=True
    )
    return done.stdout.decode("utf-8")


def test_the_whole_report_renders_with_hostile_labels_as_literal_text(hostile_report):
    _document, text = hostile_report
    rtl = {"שלום עולם", "مرحبا بالعالم"}  # extracted in visual order: checked below
    for i, hostile in enumerate(HOSTILE):
        if hostile in rtl:
            continue
        assert _visible(hostile) in text, hostile  # the subgroup table prints it whole
        # The forest plot's labels (a table cell never joins attribute and group with ': ').
        for label in (f"{hostile}: g{i}", f"a{i}: {hostile}"):
            if len(label) <= MAX_LABEL_CHARS:
                assert _visible(label) in text, label
    assert "White$\\undefinedmacro$:g0" in text
    assert "a1:$5and$6" in text


def test_right_to_left_labels_reach_the_pdf(hostile_report):
    _document, text = hostile_report
    for hostile in ("שלום עולם", "مرحبا بالعالم"):
        words = hostile.split()
        assert all(word in text or word[::-1] in text for word in words), hostile
