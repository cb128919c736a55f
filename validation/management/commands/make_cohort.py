"""`manage.py make_cohort --out DIR --cases N --seed S [--prevalence P] [--shift KEY=VALUE ...]`

Writes a synthetic multi-site DX/CR cohort (real DICOM files, the manifest CSV that
`dataset_version_import` reads and the cohort's study card, `study_card.json`, beside it) with
`validation.synthetic.cohort.generate_cohort`. Deterministic for a seed.
``--shift manufacturer="Cobalt Systems" --shift noise_scale=3`` makes that scanner's images
noisier, so a model trained mostly on the other scanners shows a measurable disparity.
"""

import csv
import json
import time
from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from validation.study_card import FILE_NAME as STUDY_CARD_FILE
from validation.synthetic.cohort import cohort_study_card, generate_cohort


def parse_shift(items: list[str]) -> dict[str, str | float] | None:
    """Turn the repeated --shift KEY=VALUE options into generate_cohort's shift mapping.

    Keys and their checks are `generate_cohort`'s; this only splits and types the values.
    """
    if not items:
        return None
    shift: dict[str, str | float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise CommandError(f"--shift takes KEY=VALUE, got {item!r}")
        key, value = key.strip(), value.strip()
        if key == "noise_scale":
            try:
                shift[key] = float(value)
            except ValueError:
                raise CommandError(f"--shift noise_scale must be a number, got {value!r}") from None
        else:
            shift[key] = value
    return shift


class Command(BaseCommand):
    help = "Write a synthetic DX/CR DICOM cohort and its manifest CSV."

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, required=True, help="folder to write (new)")
        parser.add_argument("--cases", type=int, required=True)
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument("--prevalence", type=float, default=0.3)
        parser.add_argument(
            "--shift",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="manufacturer=NAME or site=CODE, and noise_scale=FACTOR (repeat the option)",
        )

    def handle(self, *args, out: Path, cases: int, seed: int, prevalence: float, shift, **options):
        if out.exists() and any(out.iterdir()):
            raise CommandError(f"{out} exists and is not empty; choose a new folder.")
        started = time.perf_counter()
        shifted = parse_shift(shift)
        try:
            manifest = generate_cohort(
                out, cases=cases, seed=seed, prevalence=prevalence, shift=shifted
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        # The cohort's study card, beside the manifest: an import of the folder freezes it.
        card = cohort_study_card(seed=seed, prevalence=prevalence, shift=shifted)
        (out / STUDY_CARD_FILE).write_text(json.dumps(card, indent=2), encoding="utf-8")
        with manifest.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        positives = sum(row["label"] == "1" for row in rows)
        sites = Counter(row["site"] for row in rows)
        self.stdout.write(
            f"{len(rows)} cases ({positives} positive) in {time.perf_counter() - started:.1f} s; "
            f"sites: {', '.join(f'{site} {n}' for site, n in sorted(sites.items()))}"
        )
        self.stdout.write(f"manifest: {manifest}")
