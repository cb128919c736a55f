"""The study card (validation/study_card.py): every entry optional, lengths bounded, unknown
keys refused, each problem at its path; the entries a card lacks are named, never hidden; the
prose says only what the card says. No database."""

import copy
import json

import pydicom
import pytest

from tests.support.sample_document import SAMPLE_STUDY_CARD
from validation.study_card import (
    ENTRIES,
    MAX_BYTES,
    StudyCardError,
    reference_standard_prose,
    study_card_errors,
    study_card_hash,
    study_card_missing,
    study_card_parse,
    study_card_problems,
    study_card_read,
    study_card_rows,
    study_design_prose,
)
from validation.synthetic.cohort import cohort_study_card, generate_cohort


def test_a_complete_card_and_an_empty_card_are_both_valid():
    assert study_card_problems(SAMPLE_STUDY_CARD) == []
    assert study_card_missing(SAMPLE_STUDY_CARD) == []
    assert study_card_problems({}) == []
    assert study_card_missing({}) == [label for _path, label in ENTRIES]


def test_problems_are_reported_at_their_paths():
    card = copy.deepcopy(SAMPLE_STUDY_CARD)
    card["sampling"]["method"] = "haphazard"
    card["reference_standard"]["readers"] = 0
    card["sites"].append("x" * 201)
    card["inclusion_criteria"] = ["ok", ""]
    card["collection_period"]["start"] = "1 March 2021"
    card["prevalence"] = "natural\x00"
    paths = {p.dotted(root="study_card"): p.message for p in study_card_problems(card)}
    assert set(paths) == {
        "study_card.sampling.method",
        "study_card.reference_standard.readers",
        "study_card.sites[3]",
        "study_card.inclusion_criteria[1]",
        "study_card.collection_period.start",
        "study_card.prevalence",
    }
    assert paths["study_card.collection_period.start"] == (
        "'1 March 2021' is not a date written YYYY-MM-DD"
    )
    assert "NUL" in paths["study_card.prevalence"]
    assert paths["study_card.inclusion_criteria[1]"] == "is empty: leave the entry out instead"
    assert "study_card/sampling/method: 'haphazard' is not one of" in " ".join(
        study_card_errors(card)
    )


def test_unknown_keys_are_refused_each_at_its_own_path():
    card = {"colour": "red", "sampling": {"method": "random", "size": 3}, "reference_standard": {
        "readers": 2, "kappa": 0.8}}  # fmt: skip
    assert study_card_errors(card) == [
        "study_card/colour: 'colour' is not an entry the study card has here",
        "study_card/reference_standard/kappa: 'kappa' is not an entry the study card has here",
        "study_card/sampling/size: 'size' is not an entry the study card has here",
    ]


def test_lengths_and_counts_are_bounded():
    assert study_card_errors({"inclusion_criteria": ["a"] * 51}) == [
        "study_card/inclusion_criteria: has more than 50 entries"
    ]
    assert study_card_errors({"prevalence": "p" * 2001}) == [
        "study_card/prevalence: is longer than 2000 characters"  # the value is not echoed
    ]
    assert study_card_errors({"prevalence": "p" * 2000}) == []
    assert study_card_errors({"reference_standard": {"readers": 1001}}) != []
    assert study_card_errors({"sites": ["A", "A"]}) == [
        "study_card/sites: names the same entry twice"
    ]


@pytest.mark.parametrize(
    ("period", "error"),
    [
        ({"start": "2021-02-30"}, "study_card/collection_period/start: '2021-02-30' is not a "
         "calendar date"),
        ({"start": "2022-01-01", "end": "2021-12-31"},
         "study_card/collection_period/end: lies before the collection start"),
    ],
)  # fmt: skip
def test_dates_must_be_real_and_in_order(period, error):
    assert study_card_errors({"collection_period": period}) == [error]


def test_a_card_file_is_parsed_and_checked(tmp_path):
    path = tmp_path / "study_card.json"
    path.write_text(json.dumps(SAMPLE_STUDY_CARD))
    assert study_card_read(path) == SAMPLE_STUDY_CARD
    for data, problem in [
        (b"{not json", "study_card: is not JSON"),
        (b"[1, 2]", "study_card: must be a JSON object"),
        (b"\xff\xfe", "study_card: is not UTF-8 text"),
        (b" " * (MAX_BYTES + 1), f"study_card: larger than {MAX_BYTES} bytes"),
        (b'{"readers": 2}', "study_card/readers: 'readers' is not an entry"),
    ]:
        with pytest.raises(StudyCardError) as refused:
            study_card_parse(data)
        assert refused.value.problems[0].startswith(problem)
    link = tmp_path / "link.json"
    link.symlink_to(path)
    with pytest.raises(StudyCardError, match="problem"):
        study_card_read(link)


def test_the_hash_is_of_the_canonical_json():
    reordered = dict(reversed(list(SAMPLE_STUDY_CARD.items())))
    assert study_card_hash(reordered) == study_card_hash(SAMPLE_STUDY_CARD)
    assert study_card_hash({}) == (
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"  # sha256("{}")
    )


def test_rows_name_every_entry_and_flag_the_missing_ones():
    rows = study_card_rows({"sites": ["North"], "reference_standard": {"readers": 3}})
    assert [r["label"] for r in rows] == [label for _path, label in ENTRIES]
    by_key = {r["key"]: r for r in rows}
    assert by_key["sites"]["items"] == ["North"] and not by_key["sites"]["missing"]
    assert by_key["reference_standard.readers"]["text"] == "3"
    assert by_key["prevalence"]["missing"] and by_key["prevalence"]["text"] is None
    assert sum(r["missing"] for r in rows) == len(ENTRIES) - 2


def test_the_prose_says_what_the_card_says_and_names_what_it_lacks():
    sentences = study_design_prose(SAMPLE_STUDY_CARD)
    assert sentences[0] == (
        "The cases were collected from 2021-03-01 to 2023-02-28 at 3 sites (Site A (university "
        "hospital), Site B (community hospital) and Site C (outpatient clinic))."
    )
    assert "Cases were sampled consecutively." in sentences
    assert not any("not provided" in s for s in sentences)
    partial = study_design_prose({"collection_period": {"end": "2020-01-01"}})
    assert partial[0] == (
        "The cases were collected until 2020-01-01; the collection start was not provided."
    )
    assert partial[-1].startswith("11 of 12 entries were not provided by the data partner: ")
    assert study_design_prose({}) == ["The data partner provided no entry of the study card."]
    assert reference_standard_prose(SAMPLE_STUDY_CARD) == (
        "Reference standard: consensus of thoracic radiologists, with CT where available. It "
        "was established by 2 readers (Board-certified thoracic radiologists, 8 and 15 years). "
        "Adjudication: A third radiologist decided on disagreement."
    )
    assert reference_standard_prose({}) == ""
    assert reference_standard_prose({"reference_standard": {"readers": 1}}) == (
        "The reference standard was established by 1 reader."
    )


def test_the_synthetic_cohorts_card_is_complete_says_synthetic_and_covers_its_files(tmp_path):
    shifted = cohort_study_card(seed=4, prevalence=0.25, shift={"site": "HARBOR", "noise_scale": 3})
    assert "Cobalt Systems scanners carry 3 times their usual noise" in shifted["sampling"]["note"]
    card = cohort_study_card(seed=4, prevalence=0.25)
    assert "noise" not in card["sampling"]["note"]
    assert study_card_problems(card) == [] and study_card_missing(card) == []
    assert "SYNTHETIC" in card["sampling"]["note"]
    manifest = generate_cohort(tmp_path, cases=12, seed=4, prevalence=0.25)
    start, end = (card["collection_period"][k].replace("-", "") for k in ("start", "end"))
    files = sorted((manifest.parent / "dicom").rglob("*.dcm"))
    assert len(files) == 12
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert start <= ds.StudyDate <= end
        assert ds.InstitutionName in card["sites"]
