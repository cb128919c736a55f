"""The package manifest: its JSON Schema, a complete default, and every-violation checking."""

from __future__ import annotations

from typing import Any

from blindspot_client.package.echo import bounded
from blindspot_client.package.gradcam_layer import MAX_GRID_SIDE, MAX_SKIP_TOKENS, RESHAPE_LAYOUTS
from blindspot_client.package.limits import PACKAGE_NAME_MAX_LENGTH, PACKAGE_VERSION_MAX_LENGTH

MANIFEST_NAME = "manifest.json"
MODEL_NAME = "model.pt2"
ONNX_MODEL_NAME = "model.onnx"
# The model member names a package may hold (exactly one), and the format each means.
MODEL_FORMATS = {MODEL_NAME: "pt2", ONNX_MODEL_NAME: "onnx"}
SCHEMA_VERSION = "1.0"
# One problem line, as a vendor reads it: the quoted value is cut, its length said.
ECHO_LINE_CHARS = 300

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}
_DOTTED_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"

MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "schema_version",
        "name",
        "version",
        "intended_use",
        "indications",
        "task",
        "input",
        "output",
        "threshold",
        "gradcam_target_layer",
    ],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        # Stored in ModelPackage's columns: the schema holds the columns' limits (limits.py).
        "name": {"type": "string", "minLength": 1, "maxLength": PACKAGE_NAME_MAX_LENGTH},
        "version": {"type": "string", "minLength": 1, "maxLength": PACKAGE_VERSION_MAX_LENGTH},
        # The version of the same model (name and vendor) that this one succeeds: intake refuses
        # a predecessor the vendor never submitted, and records the lineage.
        "supersedes": {
            "type": "string",
            "minLength": 1,
            "maxLength": PACKAGE_VERSION_MAX_LENGTH,
        },
        "intended_use": {"type": "string", "minLength": 1, "maxLength": 10000},
        "indications": {**_STRINGS, "minItems": 1},
        "task": {"enum": ["binary-classification"]},
        "input": {
            "type": "object",
            "additionalProperties": False,
            "required": [
                "modalities",
                "channels",
                "height",
                "width",
                "scaling",
                "resize",
                "mean",
                "std",
            ],
            "properties": {
                "modalities": {**_STRINGS, "minItems": 1},
                "channels": {"type": "integer", "minimum": 1, "maximum": 4},
                "height": {"type": "integer", "minimum": 8, "maximum": 4096},
                "width": {"type": "integer", "minimum": 8, "maximum": 4096},
                "scaling": {
                    "oneOf": [
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["method", "low", "high"],
                            "properties": {
                                "method": {"const": "percentile"},
                                "low": {"type": "number", "minimum": 0, "maximum": 100},
                                "high": {"type": "number", "minimum": 0, "maximum": 100},
                            },
                        },
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["method", "center", "width"],
                            "properties": {
                                "method": {"const": "window"},
                                "center": {"type": "number"},
                                "width": {"type": "number", "exclusiveMinimum": 0},
                            },
                        },
                    ]
                },
                "resize": {"enum": ["area", "bilinear", "nearest"]},
                "mean": {"type": "array", "items": {"type": "number"}, "minItems": 1},
                "std": {
                    "type": "array",
                    "items": {"type": "number", "exclusiveMinimum": 0},
                    "minItems": 1,
                },
            },
        },
        "output": {
            "type": "object",
            "additionalProperties": False,
            "required": ["labels", "activation", "positive_index"],
            "properties": {
                "labels": {**_STRINGS, "minItems": 2, "maxItems": 2},
                "activation": {"enum": ["sigmoid", "softmax"]},
                "positive_index": {"type": "integer", "minimum": 0},
            },
        },
        "threshold": {"type": "number", "minimum": 0, "maximum": 1},
        # null only for model.onnx packages, which get no Grad-CAM (see docs/PACKAGE_FORMAT.md).
        "gradcam_target_layer": {
            "anyOf": [
                {"type": "string", "pattern": _DOTTED_PATH, "maxLength": 200},
                {"type": "null"},
            ]
        },
        # A token layer's (N, T, D) output as a map for Grad-CAM (`runner.gradcam_layer`): drop
        # the first skip_tokens, lay the rest out as grid [h, w] row by row; T - skip = h * w.
        "gradcam_reshape": {
            "type": "object",
            "additionalProperties": False,
            "required": ["layout", "grid"],
            "properties": {
                "layout": {"enum": list(RESHAPE_LAYOUTS)},
                "grid": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": MAX_GRID_SIDE},
                    "minItems": 2,
                    "maxItems": 2,
                },
                "skip_tokens": {"type": "integer", "minimum": 0, "maximum": MAX_SKIP_TOKENS},
            },
        },
        "training_data": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "sites": _STRINGS,
                "scanners": _STRINGS,
                "date_range": {
                    "type": "array",
                    "items": {"type": "string", "pattern": _ISO_DATE},
                    "minItems": 2,
                    "maxItems": 2,
                },
            },
        },
    },
}


def default_manifest(
    *,
    name: str,
    version: str,
    gradcam_target_layer: str | None,
    intended_use: str = (
        "Flags adult chest radiographs (DX/CR) that may contain a focal lesion, for review "
        "by a radiologist. Not for use as a sole basis for diagnosis."
    ),
    indications: list[str] | None = None,
    threshold: float = 0.5,
    training_data: dict[str, Any] | None = None,
    channels: int = 1,
    height: int = 64,
    width: int = 64,
    supersedes: str | None = None,
) -> dict[str, Any]:
    """A complete binary-classification manifest with the reference pixel pipeline."""
    manifest: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": version,
        "intended_use": intended_use,
        "indications": indications or ["Focal lesion on frontal chest radiograph, adults"],
        "task": "binary-classification",
        "input": {
            "modalities": ["DX", "CR"],
            "channels": channels,
            "height": height,
            "width": width,
            "scaling": {"method": "percentile", "low": 0.5, "high": 99.5},
            "resize": "area",
            "mean": [0.5] * channels,
            "std": [0.25] * channels,
        },
        "output": {"labels": ["no-lesion", "lesion"], "activation": "sigmoid", "positive_index": 0},
        "threshold": threshold,
        "gradcam_target_layer": gradcam_target_layer,
    }
    if training_data is not None:
        manifest["training_data"] = training_data
    if supersedes is not None:
        manifest["supersedes"] = supersedes
    return manifest


def _problem(error: Any) -> str:
    """One schema problem as a line. jsonschema quotes the offending value (and keys name the
    path), so what goes back is bounded; a value that is too long is named by its length."""
    where = "/".join(str(p) for p in error.path) or "(root)"
    if error.validator == "maxLength" and isinstance(error.instance, str):
        limit = error.validator_value
        return bounded(
            f"{where}: {len(error.instance)} characters, more than the {limit} allowed",
            ECHO_LINE_CHARS,
        )
    return bounded(f"{where}: {error.message}", ECHO_LINE_CHARS)


def manifest_errors(manifest: Any, *, model_format: str = "pt2") -> list[str]:
    """Every problem with `manifest` as readable strings (empty when valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)
    found = sorted(validator.iter_errors(manifest), key=lambda e: [str(p) for p in e.path])
    errors = [_problem(e) for e in found]
    if errors:
        return errors
    spec = manifest["input"]
    if not len(spec["mean"]) == len(spec["std"]) == spec["channels"]:
        errors.append("input: mean and std need one value per channel")
    scaling = spec["scaling"]
    if scaling["method"] == "percentile" and not scaling["low"] < scaling["high"]:
        errors.append("input/scaling: low must be below high")
    output = manifest["output"]
    if output["activation"] == "softmax" and output["positive_index"] > 1:
        errors.append("output/positive_index: a binary softmax output has two columns")
    if model_format == "pt2" and manifest.get("gradcam_target_layer") is None:
        errors.append("gradcam_target_layer: a model.pt2 package must name its Grad-CAM layer")
    if "gradcam_reshape" in manifest and manifest.get("gradcam_target_layer") is None:
        errors.append("gradcam_reshape: declared without a gradcam_target_layer to reshape")
    if manifest.get("supersedes") == manifest["version"]:
        errors.append("supersedes: a version cannot succeed itself")
    date_range = manifest.get("training_data", {}).get("date_range")
    if date_range and date_range[0] > date_range[1]:
        errors.append("training_data/date_range: start is after end")
    return errors
