"""The study card: how the data partner collected a dataset version (collection period, sites,
inclusion and exclusion criteria, sampling, how prevalence arose) and how its reference standard
was established. Its JSON Schema, its problems at paths, its hash and the entries it lacks
(pure, no ORM).

Every entry is optional, so that a partner can say what it knows, but each one it leaves out is
printed as missing wherever the card is shown (`study_card_missing`), never hidden; the schema
bounds every length and refuses keys it does not know."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import jsonschema

from validation.protocol_document import DocumentProblem, protocol_hash

SCHEMA_VERSION = "1.0"
FILE_NAME = "study_card.json"  # beside the manifest CSV in an import's folder or archive
MAX_BYTES = 64 * 1024  # a card is a page of text; anything larger is not one
SAMPLING_METHODS = ["consecutive", "random", "enriched", "convenience"]

_NO_NUL = "^[^\\x00]*$"  # PostgreSQL's jsonb cannot store U+0000


def _text(max_length: int) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": _NO_NUL}


def _texts(max_items: int, max_length: int) -> dict:
    return {"type": "array", "maxItems": max_items, "items": _text(max_length)}


_DATE = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
_DATE_WRITTEN = re.compile(_DATE["pattern"])

STUDY_CARD_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Blindspot study card",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "collection_period": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"start": _DATE, "end": _DATE},
        },
        "sites": {**_texts(200, 200), "uniqueItems": True},
        "inclusion_criteria": _texts(50, 1000),
        "exclusion_criteria": _texts(50, 1000),
        "sampling": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"method": {"enum": SAMPLING_METHODS}, "note": _text(2000)},
        },
        # How the test set's prevalence arose: natural (as collected), enriched to a target, ...
        "prevalence": _text(2000),
        "reference_standard": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "method": _text(500),  # "histopathology", "consensus of three radiologists"
                "readers": {"type": "integer", "minimum": 1, "maximum": 1000},
                "reader_qualification": _text(1000),
                "adjudication": _text(1000),
            },
        },
    },
}

#: Every entry of a card, in the order the report prints it: (path, label).
ENTRIES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("collection_period", "start"), "Collection period start"),
    (("collection_period", "end"), "Collection period end"),
    (("sites",), "Sites"),
    (("inclusion_criteria",), "Inclusion criteria"),
    (("exclusion_criteria",), "Exclusion criteria"),
    (("sampling", "method"), "Sampling method"),
    (("sampling", "note"), "Sampling note"),
    (("prevalence",), "How prevalence arose"),
    (("reference_standard", "method"), "Reference standard method"),
    (("reference_standard", "readers"), "Number of readers"),
    (("reference_standard", "reader_qualification"), "Qualification of the readers"),
    (("reference_standard", "adjudication"), "Adjudication method"),
)


class StudyCardError(Exception):
    """A card that cannot be read or is invalid: every problem, each as 'path: message'."""

    def __init__(self, problems: list[str]):
        super().__init__(f"The study card has {len(problems)} problem(s).")
        self.problems = problems


def study_card_problems(card) -> list[DocumentProblem]:
    """Every problem of the card, each at its path (an unknown key at the key itself); then
    whether the dates it writes correctly are real and in order."""
    validator = jsonschema.Draft202012Validator(STUDY_CARD_SCHEMA)
    problems: list[DocumentProblem] = []
    for error in sorted(validator.iter_errors(card), key=lambda e: list(map(str, e.path))):
        problems.extend(_schema_problems(error))
    return problems + _date_problems(card)


def study_card_errors(card) -> list[str]:
    """Every problem, each as 'study_card/path: message' (as the manifest's are listed)."""
    return [f"{_slashed(p)}: {p.message}" for p in study_card_problems(card)]


def _slashed(problem: DocumentProblem) -> str:
    return "/".join(["study_card", *map(str, problem.path)])


def _schema_problems(error: jsonschema.ValidationError) -> list[DocumentProblem]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        return [
            DocumentProblem((*path, key), f"{key!r} is not an entry the study card has here")
            for key in error.instance
            if key not in known
        ]
    message = error.message
    if error.validator == "pattern" and error.validator_value == _NO_NUL:
        message = "contains a NUL character (U+0000), which cannot be stored"
    elif error.validator == "pattern":
        message = f"{error.instance!r} is not a date written YYYY-MM-DD"
    elif error.validator == "minLength":
        message = "is empty: leave the entry out instead"
    elif error.validator == "maxLength":
        message = f"is longer than {error.validator_value} characters"
    elif error.validator == "maxItems":
        message = f"has more than {error.validator_value} entries"
    elif error.validator == "uniqueItems":
        message = "names the same entry twice"
    return [DocumentProblem(path, message)]


def _date_problems(card) -> list[DocumentProblem]:
    period = card.get("collection_period") if isinstance(card, dict) else None
    if not isinstance(period, dict):
        return []
    parsed: dict[str, date] = {}
    problems = []
    for key in ("start", "end"):
        if isinstance(period.get(key), str) and _DATE_WRITTEN.fullmatch(period[key]):
            try:
                parsed[key] = date.fromisoformat(period[key])
            except ValueError:
                problems.append(
                    DocumentProblem(
                        ("collection_period", key), f"{period[key]!r} is not a calendar date"
                    )
                )
    if len(parsed) == 2 and parsed["end"] < parsed["start"]:
        problems.append(
            DocumentProblem(("collection_period", "end"), "lies before the collection start")
        )
    return problems


def study_card_hash(card: dict) -> str:
    """SHA-256 of the card's canonical JSON (sorted keys, no spaces), as the protocol's."""
    return protocol_hash(card)


def study_card_value(card: Mapping, path: tuple[str, ...]):
    """The entry at `path`, or None when the card lacks it."""
    value = card
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def study_card_missing(card: Mapping) -> list[str]:
    """The labels of the entries the card lacks (an empty list counts as missing), in order."""
    return [label for path, label in ENTRIES if study_card_value(card, path) in (None, "", [])]


def study_card_parse(data: bytes) -> dict:
    """A card from the bytes of a JSON file (UTF-8), checked: the card, or `StudyCardError`
    with every problem at its path."""
    if len(data) > MAX_BYTES:
        raise StudyCardError([f"study_card: larger than {MAX_BYTES} bytes"])
    try:
        card = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise StudyCardError(["study_card: is not UTF-8 text"]) from None
    except json.JSONDecodeError as exc:
        raise StudyCardError([f"study_card: is not JSON ({exc.msg}, line {exc.lineno})"]) from None
    if not isinstance(card, dict):
        raise StudyCardError(["study_card: must be a JSON object"])
    errors = study_card_errors(card)
    if errors:
        raise StudyCardError(errors)
    return card


def study_card_read(path: Path) -> dict:
    """The card in the file at `path` (a regular file, not a link, at most MAX_BYTES), checked
    as `study_card_parse` does."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise StudyCardError([f"study_card: {path.name} is not a regular file"])
    if path.stat().st_size > MAX_BYTES:
        raise StudyCardError([f"study_card: larger than {MAX_BYTES} bytes"])
    return study_card_parse(path.read_bytes())


def study_card_rows(card: Mapping) -> list[dict]:
    """The card as rows to display, in the order of ENTRIES: each with its `label`, `key` (the
    dotted path), `missing`, and its value as `text` (one string) or `items` (a list)."""
    rows = []
    for path, label in ENTRIES:
        value = study_card_value(card, path)
        missing = value in (None, "", [])
        rows.append(
            {
                "label": label,
                "key": ".".join(path),
                "missing": missing,
                "items": list(value) if isinstance(value, list) and not missing else None,
                "text": None if missing or isinstance(value, list) else str(value),
            }
        )
    return rows


NOT_PROVIDED = "Not provided by the data partner"
_SAMPLED = {
    "consecutive": "consecutively",
    "random": "at random",
    "enriched": "with enrichment",
    "convenience": "by convenience",
}


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _collection_sentence(card: Mapping) -> str:
    period = card.get("collection_period") or {}
    start, end = period.get("start"), period.get("end")
    sites = card.get("sites") or []
    where = (
        f" at {len(sites)} site{'s' if len(sites) != 1 else ''} ({_and(sites)})" if sites else ""
    )
    if start and end:
        return f"The cases were collected from {start} to {end}{where}."
    if start or end:
        return (
            f"The cases were collected {f'from {start}' if start else f'until {end}'}{where}; "
            f"the collection {'end' if start else 'start'} was not provided."
        )
    return f"The cases were collected{where}." if sites else ""


def _missing_sentence(card: Mapping) -> str:
    missing = study_card_missing(card)
    if len(missing) == len(ENTRIES):
        return "The data partner provided no entry of the study card."
    if not missing:
        return ""
    listed = _and([m.lower() if i else m for i, m in enumerate(missing)])
    return (
        f"{len(missing)} of {len(ENTRIES)} entries were not provided by the data partner: {listed}."
    )


def study_design_prose(card: Mapping) -> list[str]:
    """The study design in sentences, from the card's entries only (nothing inferred): one
    sentence per entry the card has, and one naming the entries it lacks."""
    sentences = [_collection_sentence(card)]
    for key, noun in (("inclusion_criteria", "inclusion"), ("exclusion_criteria", "exclusion")):
        n = len(card.get(key) or [])
        if n:
            sentences.append(f"{n} {noun} criteri{'a' if n != 1 else 'on'} applied (listed below).")
    sampling = card.get("sampling") or {}
    if sampling.get("method"):
        sentences.append(f"Cases were sampled {_SAMPLED[sampling['method']]}.")
    if sampling.get("note"):
        sentences.append(f"Sampling note: {sampling['note'].rstrip('.')}.")
    if card.get("prevalence"):
        sentences.append(f"How the prevalence arose: {card['prevalence'].rstrip('.')}.")
    sentences.append(_missing_sentence(card))
    return [s for s in sentences if s]


def reference_standard_prose(card: Mapping) -> str:
    """The reference standard in one or two sentences from the card's entries (empty when the
    card has none of them)."""
    rs = card.get("reference_standard") or {}
    if not rs:
        return ""
    method = rs.get("method")
    readers = rs.get("readers")
    who = ""
    if readers is not None:
        who = f" by {readers} reader{'s' if readers != 1 else ''}"
        if rs.get("reader_qualification"):
            who += f" ({rs['reader_qualification'].rstrip('.')})"
    elif rs.get("reader_qualification"):
        who = f" by readers qualified as: {rs['reader_qualification'].rstrip('.')}"
    sentences = [f"Reference standard: {method.rstrip('.')}." if method else ""]
    if who:
        sentences.append(f"{'It' if method else 'The reference standard'} was established{who}.")
    text = " ".join(s for s in sentences if s)
    if rs.get("adjudication"):
        text += f" Adjudication: {rs['adjudication'].rstrip('.')}."
    return text
