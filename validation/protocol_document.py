"""The protocol document: schema, defaults and canonical hashing (pure, no ORM)."""

import hashlib
import json

import jsonschema

METRICS = ["auc", "sensitivity", "specificity", "ppv", "npv", "accuracy"]

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
                    "bound": {"enum": ["estimate", "lower", "upper"]},
                    "comparator": {"enum": [">=", ">", "<=", "<"]},
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
                },
            },
        },
        "min_cell_size": {"type": "integer", "minimum": 1},
        "failure_policy": {"enum": ["exclude-and-report"]},
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
    },
}

DEFAULTS = {
    "secondary_endpoints": ["sensitivity", "specificity"],
    "confidence_level": 0.95,
    "failure_policy": "exclude-and-report",
    "explain": {"cases": "positives"},
    "required_signatures": ["reviewed", "approved"],
}


def protocol_errors(document) -> list[str]:
    """Every schema violation, each as 'path: message'."""
    validator = jsonschema.Draft202012Validator(PROTOCOL_SCHEMA)
    errors = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(p) for p in error.absolute_path) or "(document)"
        errors.append(f"{path}: {error.message}")
    return errors


def with_defaults(document: dict) -> dict:
    return {**DEFAULTS, **document}


def protocol_hash(document: dict) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
