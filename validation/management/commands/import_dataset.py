"""`manage.py import_dataset SOURCE --partner P --dataset NAME --steward USER [--create ...]
[--study-card CARD.json]`

Imports and seals a new version of a partner's dataset from a directory, a manifest CSV, or a
zip/tar archive (see `dataset_version_import`). Prints progress, then the version's Merkle root
and its unreadable files grouped by reason; a refused import lists every problem by line and
exits non-zero with nothing stored.
"""

import sys
from collections import Counter
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from validation.errors import ApplicationError
from validation.models import Dataset, Organisation
from validation.services.datasets import dataset_create, dataset_version_import
from validation.study_card import StudyCardError, study_card_missing, study_card_read


class Command(BaseCommand):
    help = "Import a dataset version (DICOM files + manifest CSV) from a folder or an archive."

    def add_arguments(self, parser):
        parser.add_argument("source", type=Path, help="folder, manifest CSV, or zip/tar archive")
        parser.add_argument("--partner", required=True, help="the partner organisation's name")
        parser.add_argument("--dataset", required=True, help="the dataset's name")
        parser.add_argument("--steward", required=True, help="username of the partner's steward")
        parser.add_argument(
            "--create", action="store_true", help="create the dataset if it does not exist"
        )
        parser.add_argument(
            "--identity-policy",
            choices=Dataset.IdentityPolicy.values,
            default=Dataset.IdentityPolicy.DEIDENTIFY,
            help="for --create: de-identify files (PS3.15 basic profile) or reject them",
        )
        parser.add_argument("--workers", type=int, default=None, help="ingest processes")
        parser.add_argument(
            "--study-card",
            type=Path,
            default=None,
            help="the version's study card (JSON); else a study_card.json beside the manifest, "
            "else the dataset's draft",
        )

    def handle(self, *args, source: Path, partner: str, dataset: str, steward: str, **options):
        if not source.exists():
            raise CommandError(f"{source} does not exist.")
        actor = get_user_model().objects.filter(username=steward).first()
        if actor is None:
            raise CommandError(f"No user {steward!r}.")
        org = Organisation.objects.filter(name=partner, kind=Organisation.Kind.PARTNER).first()
        if org is None:
            raise CommandError(f"No partner organisation {partner!r}.")
        card = None
        if options["study_card"] is not None:
            try:
                card = study_card_read(options["study_card"])
            except StudyCardError as exc:
                for line in exc.problems:
                    self.stderr.write(f"  {line}")
                raise CommandError(f"The study card {options['study_card']} is invalid.") from None
        try:
            target = self._dataset(actor, org, dataset, options)
            version = dataset_version_import(
                actor=actor,
                dataset=target,
                source=source,
                workers=options["workers"],
                progress=self._progress,
                study_card=card,
            )
        except ApplicationError as exc:
            for line in exc.errors:
                self.stderr.write(f"  {line}")
            raise CommandError(exc.message) from None
        self._summary(version)

    def _dataset(self, actor, org, name: str, options) -> Dataset:
        found = Dataset.objects.filter(partner=org, name=name).first()
        if found is not None:
            return found
        if not options["create"]:
            raise CommandError(f"No dataset {name!r} for {org.name}; pass --create to make it.")
        return dataset_create(
            actor=actor, partner=org, name=name, identity_policy=options["identity_policy"]
        )

    def _progress(self, done: int, total: int) -> None:
        if sys.stdout.isatty() or done == total or done % 1000 == 0:
            self.stdout.write(f"  {done}/{total} files", ending="\r" if done < total else "\n")

    def _summary(self, version) -> None:
        cases = version.cases.all()
        reasons = Counter(c.read_error for c in cases if c.read_error)
        total = cases.count()
        self.stdout.write(
            self.style.SUCCESS(
                f"Sealed {version} ({version.identity_policy}): {total} cases, "
                f"{total - sum(reasons.values())} readable, {sum(reasons.values())} unreadable, "
                f"in {version.import_seconds:.1f} s"
            )
        )
        self.stdout.write(f"  Merkle root {version.merkle_root}")
        missing = study_card_missing(version.study_card or {})
        self.stdout.write(
            f"  Study card SHA-256 {version.study_card_sha256}"
            + (f" ({len(missing)} entries not provided)" if missing else " (complete)")
        )
        for reason, n in reasons.most_common():
            self.stdout.write(f"  {n:>5} unreadable: {reason}")
