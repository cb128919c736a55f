"""Model packages: the vendor-side builder and the intake-side safe reader.

A package is one `.tar.gz` (or plain `.tar`) holding exactly two regular files:

- `model.pt2`: a `torch.export` program (`torch.export.save`), exported in eval mode with a dynamic
  batch dimension, or `model.onnx` (inference through onnxruntime; Grad-CAM is not available for
  ONNX packages). TorchScript archives, `torch.save` checkpoints and plain pickles are refused.
- `manifest.json`: a UTF-8 JSON object with these fields (`MANIFEST_SCHEMA` is the formal form):

  ``schema_version``  "1.0".
  ``name``, ``version``  the product name and the vendor's version string.
  ``intended_use``  the vendor's intended-use statement, free text (copied into the report).
  ``indications``  list of indication statements (strings).
  ``task``  "binary-classification" (multiclass, multilabel, segmentation, detection: later).
  ``input``  what the model expects after Blindspot's pixel pipeline:
      ``modalities``  DICOM modalities accepted, e.g. ["DX", "CR"];
      ``channels``, ``height``, ``width``  the tensor shape per image (N, C, H, W);
      ``scaling``  {"method": "percentile", "low": 0.5, "high": 99.5} (percentiles of each image
          mapped to 0..1) or {"method": "window", "center": c, "width": w};
      ``resize``  "area" | "bilinear" | "nearest";
      ``mean``, ``std``  per-channel normalisation applied after scaling: (x - mean) / std.
  ``output``  how to read the model's (N, K) output:
      ``labels``  class names, negative first: ["no-lesion", "lesion"];
      ``activation``  "sigmoid" (one logit per image) or "softmax";
      ``positive_index``  the output column that carries the positive-class score (0 for a single
          sigmoid logit).
  ``threshold``  the vendor's operating point on the activated score, declared before testing and
      never tuned on test data.
  ``gradcam_target_layer``  dotted submodule path for Grad-CAM, e.g. "block3" or "layer4.1".
  ``gradcam_reshape`` (optional)  for a token layer (N, T, D): {"layout": "tokens", "grid":
      [h, w], "skip_tokens": k}, the first k tokens dropped and the rest laid out on the h x w
      grid (T - k = h * w; see `blindspot_client.package.gradcam_layer`).
  ``training_data`` (optional)  {"sites": [...], "scanners": [...], "date_range": [start, end]}
      with ISO dates; used for the independence check against the test data.

`build_package` is what a vendor runs (it exports the model itself). `read_package` is what intake
runs on an untrusted upload: it never extracts to disk, never follows links, stops reading as soon
as a limit is passed, and raises `PackageError` with a reason that is safe to show the uploader.
It does not load the model: loading a `.pt2` runs code, so that happens only in the sandboxed
runner (`validation.runner`).

The code lives in the client package (`blindspot_client.package`, clients/python), which vendors
install; this module re-exports it so the server imports one name.
"""

from blindspot_client.package.builder import MAX_BATCH, build_package, export_model
from blindspot_client.package.manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA,
    MODEL_NAME,
    SCHEMA_VERSION,
    default_manifest,
    manifest_errors,
)
from blindspot_client.package.reader import (
    DEFAULT_MAX_ARCHIVE_BYTES,
    DEFAULT_MAX_MEMBERS,
    DEFAULT_MAX_TOTAL_BYTES,
    MAX_MANIFEST_BYTES,
    PackageContents,
    PackageError,
    read_package,
    read_package_contents,
)

__all__ = [
    "DEFAULT_MAX_ARCHIVE_BYTES",
    "DEFAULT_MAX_MEMBERS",
    "DEFAULT_MAX_TOTAL_BYTES",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "MAX_BATCH",
    "MAX_MANIFEST_BYTES",
    "MODEL_NAME",
    "SCHEMA_VERSION",
    "PackageContents",
    "PackageError",
    "build_package",
    "default_manifest",
    "export_model",
    "manifest_errors",
    "read_package",
    "read_package_contents",
]
