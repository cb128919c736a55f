"""Report sections 2 (Study design) and 7 (Reference standard) from the dataset version's
frozen study card: the card as plain JSON with its hash and its missing entries in the
document; in the PDF, prose and a table where every missing entry reads "Not provided by the
data partner"; a version sealed before study cards, and a report issued before them, say so."""

import copy
import io
from datetime import UTC, datetime

import numpy as np
import pytest
from pypdf import PdfReader

from reports.document import report_document_build
from reports.rendering import render_pdf
from tests.factories import RunFactory
from tests.support.sample_document import SAMPLE_STUDY_CARD, sample_document
from validation.management.commands.demo import PROTOCOL
from validation.models import MetricResult, ValidationRun
from validation.protocol_document import with_defaults
from validation.stats.evaluation import Plan, evaluate
from validation.study_card import ENTRIES, study_card_hash

pytestmark = pytest.mark.django_db
NOT_PROVIDED = "Not provided by the data partner"


def _document(study_card: dict | None) -> dict:
    run = RunFactory.create(
        status=ValidationRun.Status.REPORTING,
        protocol__document=with_defaults(PROTOCOL),
        dataset_version__study_card=study_card,
        dataset_version__study_card_sha256="" if study_card is None else study_card_hash(
            study_card),
    )  # fmt: skip
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 80)
    scores = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.2, 80), 0, 1)
    protocol = run.protocol.document
    groups = {s["attribute"]: np.array(["a"] * len(y)) for s in protocol["subgroups"]}
    plan = Plan.from_protocol(protocol, threshold=float(run.package.manifest["threshold"]))
    sections = evaluate(y, scores, groups, plan)
    sections.pop("scoring")
    sections["failures"] = {"by_category": [], "n_cases": len(y), "n_scored": len(y)}
    for section, value in sections.items():
        MetricResult.objects.create(run=run, section=section, value=value)
    return report_document_build(
        run, report_ref="RPT-TEST", version=1, generated_at=datetime(2026, 12, 8, tzinfo=UTC)
    )


def _section(document: dict, heading: str, following: str) -> str:
    """The PDF's words between two headings, spaces normalised."""
    pages = PdfReader(io.BytesIO(render_pdf(document))).pages
    words = " ".join(" ".join(page.extract_text() for page in pages).split())
    start = words.index(heading)
    return words[start : words.index(following, start)]


def test_a_complete_card_fills_both_sections(world):
    document = _document(SAMPLE_STUDY_CARD)
    assert document["study_design"] == {
        "recorded": True,
        "card": SAMPLE_STUDY_CARD,
        "missing": [],
        "sha256": study_card_hash(SAMPLE_STUDY_CARD),
    }
    reference = document["reference_standard"]
    assert reference["text"].startswith("Reference labels and lesion boxes supplied")
    assert {k: reference[k] for k in SAMPLE_STUDY_CARD["reference_standard"]} == (
        SAMPLE_STUDY_CARD["reference_standard"]
    )
    design = _section(document, "2 Study design", "3 Protocol")
    assert "The cases were collected from 2021-03-01 to 2023-02-28 at 3 sites" in design
    assert "Cases were sampled consecutively." in design
    flat = design.replace(" ", "")  # a long hash wraps across lines
    for text in ("Reference standard available within 30 days", "Lateral projection only",
                 "Natural: as it occurred in the consecutive series.",
                 study_card_hash(SAMPLE_STUDY_CARD)):  # fmt: skip
        assert text.replace(" ", "") in flat, text
    assert NOT_PROVIDED not in design and "{" not in design and "[" not in design
    reference_text = _section(document, "7 Reference standard", "8 Methods")
    assert "It was established by 2 readers (Board-certified thoracic radiologists" in (
        reference_text
    )
    assert "Adjudication method A third radiologist decided on disagreement" in reference_text
    assert NOT_PROVIDED not in reference_text


def test_every_missing_entry_is_printed_as_not_provided(world):
    card = {"sites": ["North"], "reference_standard": {"readers": 3}}
    document = _document(card)
    assert document["study_design"]["missing"] == [
        label for _path, label in ENTRIES if label not in ("Sites", "Number of readers")
    ]
    assert document["reference_standard"]["method"] is None
    design = _section(document, "2 Study design", "3 Protocol")
    assert design.count(NOT_PROVIDED) == len(ENTRIES) - 2
    assert "10 of 12 entries were not provided by the data partner" in design
    reference_text = _section(document, "7 Reference standard", "8 Methods")
    assert reference_text.count(NOT_PROVIDED) == 3
    assert "Number of readers 3" in reference_text


def test_a_version_sealed_before_study_cards_prints_every_entry_as_missing(world):
    document = _document(None)
    assert document["study_design"]["recorded"] is False
    assert document["study_design"]["sha256"] == ""
    design = _section(document, "2 Study design", "3 Protocol")
    assert "sealed before study cards were recorded" in design
    assert design.count(NOT_PROVIDED) == len(ENTRIES)
    assert "No study card recorded" in design


def test_a_report_issued_before_study_cards_still_renders_and_says_so():
    document = copy.deepcopy(sample_document())
    del document["study_design"]
    document["reference_standard"] = {"text": "Labels from the manifest."}
    design = _section(document, "2 Study design", "3 Protocol")
    assert "Not available: this report was issued before study designs were recorded." in design
    reference_text = _section(document, "7 Reference standard", "8 Methods")
    assert "Labels from the manifest." in reference_text
    assert "not available in this report" in reference_text
