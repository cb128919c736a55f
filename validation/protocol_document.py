"""The protocol document: schema, defaults and canonical hashing (pure, no ORM)."""

import hashlib
import json
from typing import NamedTuple

import jsonschema

METRICS = ["auc", "sensitivity", "specificity", "ppv", "npv", "accuracy"]
# Between-group disparities of the decision (subgroups.fairness_summary computes each).
DISPARITIES = [
    "tpr_difference",
    "fpr_difference",
    "equalized_odds_difference",
    "demographic_parity_difference",
]
#: What a comparison of two model versions can pre-register (validation/stats/comparison.py).
COMPARISON_METRICS = ["auc", "sensitivity", "specificity"]
#: Each calibration bin is a cell of the disclosure rule (validation/stats/disclosure.py).
MAX_CALIBRATION_BINS = 20

_COMPARATOR = {"enum": [">=", ">", "<=", "<"]}
_BOUND = {"enum": ["estimate", "lower", "upper"]}

PROTOCOL_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Blindspot protocol document",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "schema_version",
        "task",
        "primary_endpoint",
        "operating_point",
        "acceptance_criteria",
        "subgroups",
        "min_cell_size",
    ],
    "properties": {
        "schema_version": {"const": "1.0"},
        "task": {"const": "binary-classification"},
        "primary_endpoint": {"enum": METRICS},
        "secondary_endpoints": {"type": "array", "items": {"enum": METRICS}},
        "operating_point": {
            "type": "object",
            "additionalProperties": False,
            "required": ["source"],
            # Never tuned on test data: the vendor's declared threshold is the only source.
            "properties": {"source": {"const": "vendor-declared"}},
        },
        "confidence_level": {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 1},
        "acceptance_criteria": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["metric", "bound", "comparator", "value"],
                "properties": {
                    "metric": {"enum": METRICS},
                    "bound": _BOUND,
                    "comparator": _COMPARATOR,
                    "value": {"type": "number", "minimum": 0, "maximum": 1},
                },
            },
        },
        "subgroups": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["attribute"],
                "properties": {
                    "attribute": {"type": "string", "minLength": 1, "maxLength": 64},
                    "bins": {"type": "array", "items": {"type": "number"}, "minItems": 2},
                    # Pre-specified subgroups are confirmatory; exploratory ones get their
                    # disparity p-values adjusted for multiplicity (see "multiplicity").
                    "exploratory": {"type": "boolean"},
                },
            },
        },
        "min_cell_size": {"type": "integer", "minimum": 1},
        # exclude-and-report: failed cases are counted and listed, not scored.
        # score-as-error: a failed case counts as a wrong decision (a positive as a false
        # negative, a negative as a false positive) and as the worst score for the AUC.
        "failure_policy": {"enum": ["exclude-and-report", "score-as-error"]},
        # Single proportions: Wilson score, Wilson with continuity correction (Newcombe 1998,
        # method 4) or Clopper-Pearson.
        "interval_method": {"enum": ["wilson", "wilson-cc", "clopper-pearson"]},
        # AUC: DeLong on the logit scale (holds 95% coverage at high AUC and small samples)
        # or plain DeLong (pROC's). Either falls back to a score interval where the DeLong
        # variance is 0 or undefined.
        "auc_interval_method": {"enum": ["delong-logit", "delong"]},
        "bootstrap": {
            "type": "object",
            "additionalProperties": False,
            "required": ["replicates", "seed"],
            "properties": {
                "replicates": {"type": "integer", "minimum": 0, "maximum": 20000},
                "seed": {"type": "integer", "minimum": 0},
                "method": {"enum": ["bca", "percentile"]},
            },
        },
        "multiplicity": {"enum": ["holm", "bh", "none"]},
        "calibration": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "bins": {"type": "integer", "minimum": 2, "maximum": MAX_CALIBRATION_BINS}
            },
        },
        "fairness_criteria": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["attribute", "metric", "bound", "comparator", "value"],
                "properties": {
                    "attribute": {"type": "string", "minLength": 1, "maxLength": 64},
                    "metric": {"enum": DISPARITIES},
                    "bound": _BOUND,
                    "comparator": _COMPARATOR,
                    "value": {"type": "number", "minimum": -1, "maximum": 1},
                },
            },
        },
        "explain": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"cases": {"enum": ["positives", "none"]}},
        },
        "required_signatures": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": ["reviewed", "approved"]},
        },
        "max_runs_per_vendor": {"type": "integer", "minimum": 1},
        # A comparison of two versions on the same cases (a predetermined change control
        # plan): each endpoint's difference (candidate minus baseline) must have its lower
        # bound above -margin (non-inferiority) or above margin (superiority, usually 0).
        # Optional and without a default, so a document without it hashes as before.
        "comparison": {
            "type": "object",
            "additionalProperties": False,
            "required": ["endpoints"],
            "properties": {
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["metric", "hypothesis", "margin"],
                        "properties": {
                            "metric": {"enum": COMPARISON_METRICS},
                            "hypothesis": {"enum": ["non-inferiority", "superiority"]},
                            "margin": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                        },
                    },
                },
            },
        },
    },
}

DEFAULTS = {
    "secondary_endpoints": ["sensitivity", "specificity"],
    "confidence_level": 0.95,
    "failure_policy": "exclude-and-report",
    "interval_method": "wilson",
    "auc_interval_method": "delong-logit",
    "bootstrap": {"replicates": 2000, "seed": 20261123, "method": "bca"},
    "multiplicity": "holm",
    "calibration": {"bins": 10},
    "fairness_criteria": [],
    "explain": {"cases": "positives"},
    "required_signatures": ["reviewed", "approved"],
}


class DocumentProblem(NamedTuple):
    """One problem of a protocol document: where (keys and list indexes from the document's
    root; empty for the document itself) and what."""

    path: tuple[str | int, ...]
    message: str

    def slashed(self) -> str:
        """The path as the console shows it: `acceptance_criteria/0/metric`."""
        return "/".join(str(p) for p in self.path) or "(document)"

    def dotted(self, root: str = "document") -> str:
        """The path as the API reports it: `document.acceptance_criteria[0].metric`."""
        text = root
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text


def protocol_problems(document) -> list[DocumentProblem]:
    """Every problem of the document, each at its path: the schema's violations (a missing or
    unknown key at the key itself), then, for a document the schema accepts, the consistency
    checks."""
    validator = jsonschema.Draft202012Validator(PROTOCOL_SCHEMA)
    problems: list[DocumentProblem] = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path))):
        for problem in _schema_problems(error):
            if problem not in problems:  # each missing key once, though named by one error each
                problems.append(problem)
    return problems or _consistency_problems(document)


def protocol_errors(document) -> list[str]:
    """Every problem, each as 'path: message' (the path slashed, as the console shows it)."""
    return [f"{p.slashed()}: {p.message}" for p in protocol_problems(document)]


def _schema_problems(error: jsonschema.ValidationError) -> list[DocumentProblem]:
    path = tuple(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        return [DocumentProblem((*path, key), f"{key!r} is a required property") for key in missing]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        return [
            DocumentProblem((*path, key), f"{key!r} is not a key the protocol document has here")
            for key in error.instance
            if key not in known
        ]
    message = error.message
    if path == ("calibration", "bins") and error.validator == "maximum":
        message = (
            f"at most {MAX_CALIBRATION_BINS} calibration bins, got {error.instance!r}: every "
            "bin is a cell of the disclosure rule, so more bins only mean more suppressed "
            "ones (and a wider channel for a model's scores)"
        )
    return [DocumentProblem(path, message)]


def _consistency_problems(document: dict) -> list[DocumentProblem]:
    """What the schema cannot say: no text holds a NUL character (PostgreSQL's jsonb cannot
    store one), bins must increase, an attribute is declared once, and a fairness criterion
    names a declared subgroup attribute, and a comparison endpoint's metric is declared once."""
    problems = list(_nul_problems(document, ()))
    declared = [spec["attribute"] for spec in document.get("subgroups", [])]
    for i, spec in enumerate(document.get("subgroups", [])):
        bins = spec.get("bins")
        if bins and any(b <= a for a, b in zip(bins, bins[1:], strict=False)):
            problems.append(
                DocumentProblem(
                    ("subgroups", i, "bins"), f"must be strictly increasing, got {bins}"
                )
            )
        if spec["attribute"] in declared[:i]:
            problems.append(
                DocumentProblem(
                    ("subgroups", i, "attribute"), f"{spec['attribute']!r} is declared twice"
                )
            )
    for i, criterion in enumerate(document.get("fairness_criteria", [])):
        if criterion["attribute"] not in declared:
            problems.append(
                DocumentProblem(
                    ("fairness_criteria", i, "attribute"),
                    f"{criterion['attribute']!r} is not one of the protocol's subgroup "
                    f"attributes ({', '.join(declared) or 'none declared'})",
                )
            )
    endpoints = (document.get("comparison") or {}).get("endpoints", [])
    metrics = [endpoint["metric"] for endpoint in endpoints]
    for i, metric in enumerate(metrics):
        if metric in metrics[:i]:
            problems.append(
                DocumentProblem(
                    ("comparison", "endpoints", i, "metric"),
                    f"{metric!r} is declared twice: one hypothesis and margin per metric",
                )
            )
    return problems


def _nul_problems(value, path: tuple[str | int, ...]):
    if isinstance(value, str) and "\x00" in value:
        yield DocumentProblem(path, "contains a NUL character (U+0000), which cannot be stored")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nul_problems(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_problems(item, (*path, index))


def with_defaults(document: dict) -> dict:
    return {**DEFAULTS, **document}


def protocol_hash(document: dict) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
