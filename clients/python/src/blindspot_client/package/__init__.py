"""The model package format: `manifest` (JSON Schema, defaults), `builder` (vendor side:
`torch.export` and a reproducible tar), `reader` (intake: bounded reading of untrusted archives,
never imports torch), `gradcam_layer` (what a Grad-CAM target layer must produce).

Kept import-light on purpose: the server's sandboxed worker imports `gradcam_layer` from here."""
