"""Vendor-side command: turn a PyTorch model into a Blindspot package.

    python -m blindspot_client.package \\
        --model mypackage.models:build_model --weights weights.pt \\
        --manifest manifest.json --example-batch 2 --out lesionfinder-1.0.0.tar.gz

`--model` names a callable that returns an nn.Module (built on the vendor's own machine, with
the vendor's own code); `--weights` is an optional state dict, loaded with weights_only=True.
The example input shape comes from the manifest's input spec. Exit status 2 when the manifest or
the model does not fit. `blindspot build` (blindspot_client.cli) is the command vendors use: it
lists every problem at once.
"""

import argparse
import importlib
import json
import sys
from pathlib import Path

from blindspot_client.package.builder import build_package
from blindspot_client.package.manifest import manifest_errors


def _load_callable(spec: str):
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise SystemExit(f"--model must look like 'package.module:callable', got {spec!r}")
    return getattr(importlib.import_module(module_name), attribute)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m blindspot_client.package",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="module:callable returning an nn.Module")
    parser.add_argument("--weights", type=Path, help="state dict to load (weights_only)")
    parser.add_argument("--manifest", type=Path, required=True, help="manifest.json to embed")
    parser.add_argument("--example-batch", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    try:
        manifest = json.loads(args.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read the manifest: {exc}", file=sys.stderr)
        return 2
    errors = manifest_errors(manifest)
    if errors:
        print("the manifest is invalid:", *errors, sep="\n  ", file=sys.stderr)
        return 2

    import torch

    model = _load_callable(args.model)()
    if args.weights:
        model.load_state_dict(torch.load(args.weights, weights_only=True))
    spec = manifest["input"]
    example = torch.randn(
        max(args.example_batch, 2), spec["channels"], spec["height"], spec["width"]
    )
    try:
        out = build_package(
            model=model, example_input=example, manifest=manifest, out_path=args.out
        )
    except ValueError as exc:
        print(f"cannot build the package: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
