"""The main job on the embedded default: a blind validation from cohort to issued report.

Every step is a service call that writes its audit events; nothing here reaches around them.
Re-running reuses the organisations, users and (identical) package, and adds a new dataset
version, protocol version and run.
"""

import hashlib
import json
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from reports.models import Report
from reports.services import report_sign
from validation.errors import ApplicationError
from validation.models import (
    ComparisonRun,
    Dataset,
    ModelPackage,
    Organisation,
    Role,
    ValidationRun,
)
from validation.protocol_document import protocol_errors
from validation.services.comparisons import comparison_start
from validation.services.datasets import dataset_create, dataset_grant, dataset_version_import
from validation.services.organisations import organisation_create, user_create_with_role
from validation.services.packages import package_review, package_submit
from validation.services.protocols import protocol_create
from validation.services.runs import run_start
from validation.storage import media_path, sha256_file
from validation.study_card import FILE_NAME as STUDY_CARD_FILE

ORGANISATIONS = {
    "vendor": ("Northwind Radiology AI", Organisation.Kind.VENDOR),
    "partner": ("St. Elsewhere Health Network", Organisation.Kind.PARTNER),
    "validator": ("Blindspot Validation Team", Organisation.Kind.VALIDATOR),
}
# (username, full name, organisation key, role). Demo passwords are local-only and printed.
PEOPLE = [
    ("vera", "Vera Vendor", "vendor", Role.VENDOR_MEMBER),
    ("pat", "Pat Steward", "partner", Role.PARTNER_STEWARD),
    ("rita", "Rita Reviewer", "validator", Role.REVIEWER),
    ("quinn", "Quinn Approver", "validator", Role.QA_APPROVER),
    ("audrey", "Audrey Auditor", "validator", Role.AUDITOR),
]
SHIFT = {"manufacturer": "Cobalt Systems", "noise_scale": 2.5}
PREVALENCE = 0.3
# The vendor trained mostly on two of the three scanners: the third is where it will falter.
TRAINING_SITES = {"Acme Medical": 0.55, "Borealis Imaging": 0.40, "Cobalt Systems": 0.05}

PROTOCOL = {
    "schema_version": "1.0",
    "task": "binary-classification",
    "primary_endpoint": "auc",
    "secondary_endpoints": ["sensitivity", "specificity"],
    "operating_point": {"source": "vendor-declared"},
    "acceptance_criteria": [
        {"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.75},
        {"metric": "sensitivity", "bound": "lower", "comparator": ">=", "value": 0.60},
        {"metric": "specificity", "bound": "lower", "comparator": ">=", "value": 0.60},
    ],
    # Pre-stated for section 4: the performance goal of each primary endpoint (the null
    # hypothesis is that the device does not exceed it) and the value the sample was sized for.
    "performance_goals": [
        {"metric": "auc", "goal": 0.75, "anticipated": 0.85, "power": 0.8},
        {"metric": "sensitivity", "goal": 0.60, "anticipated": 0.80, "power": 0.8},
        {"metric": "specificity", "goal": 0.60, "anticipated": 0.80, "power": 0.8},
    ],
    "subgroups": [
        {"attribute": "sex"},
        {"attribute": "manufacturer"},
        {"attribute": "age", "bins": [18, 40, 65, 120]},
        {"attribute": "race", "exploratory": True},
    ],
    # Pre-registered: sensitivity may differ between scanners by at most 0.15.
    "fairness_criteria": [
        {
            "attribute": "manufacturer",
            "metric": "tpr_difference",
            "bound": "estimate",
            "comparator": "<=",
            "value": 0.15,
        }
    ],
    "bootstrap": {"replicates": 1000, "seed": 20261123, "method": "bca"},
    "min_cell_size": 10,
    "max_runs_per_vendor": 1000,
}


# `--compare`: the change control plan pre-registered for version 1.1 against 1.0 (each
# difference is 1.1 minus 1.0; non-inferior when its lower 95% bound is above -0.05).
COMPARISON = {
    "endpoints": [
        {"metric": "auc", "hypothesis": "non-inferiority", "margin": 0.05},
        {"metric": "sensitivity", "hypothesis": "non-inferiority", "margin": 0.05},
        {"metric": "specificity", "hypothesis": "non-inferiority", "margin": 0.05},
    ]
}
# Version 1.1 of the demo model: trained longer, from another seed, on the same kind of data.
SUCCESSOR_VERSION, SUCCESSOR_SEED_OFFSET, SUCCESSOR_EPOCHS = "1.1.0", 1, 14


def demo_password(username: str) -> str:
    return f"blindspot-demo-{username}"


class Command(BaseCommand):
    help = "Run a complete blind validation on synthetic data and issue its signed report."

    def add_arguments(self, parser):
        parser.add_argument("--cases", type=int, default=240)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--training-cases", type=int, default=2000)
        parser.add_argument(
            "--protocol",
            type=Path,
            help="a protocol JSON document to validate under instead of the built-in one",
        )
        parser.add_argument(
            "--compare",
            action="store_true",
            help="then build version 1.1 of the model (supersedes the demo's version), validate "
            "both under a protocol that pre-registers their comparison, and issue the comparison "
            "report",
        )
        parser.add_argument(
            "--export-scores",
            type=Path,
            help="with --compare: write both versions' scores by case to this CSV",
        )

    def handle(self, *args, **options):
        try:
            context = self._demo(
                cases=options["cases"],
                seed=options["seed"],
                training_cases=options["training_cases"],
                protocol_document=self._protocol(options["protocol"]),
            )
            if options["compare"]:
                self._compare(context, export=options["export_scores"])
        except ApplicationError as exc:
            raise CommandError("\n  ".join([exc.message, *exc.errors])) from exc

    @staticmethod
    def _protocol(path: Path | None) -> dict:
        if path is None:
            return PROTOCOL
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read the protocol {path}: {exc}") from exc
        # Checked before anything is created, so a bad protocol leaves nothing behind.
        errors = protocol_errors(document)
        if errors:
            raise CommandError("\n  ".join([f"The protocol {path} is invalid:", *errors]))
        return document

    def _demo(self, *, cases: int, seed: int, training_cases: int, protocol_document: dict) -> dict:
        if settings.PRODUCTION:
            raise CommandError("The demo creates known passwords; it refuses to run in production.")
        if cases < 20:
            raise CommandError("--cases must be at least 20 for meaningful statistics.")
        started = time.perf_counter()
        orgs = self._organisations()
        people = self._people(orgs)
        self._step("Generating synthetic cohort")
        manifest = self._cohort(cases=cases, seed=seed)
        self._step("Partner imports and seals the dataset version")
        version = self._dataset(people["pat"], orgs, manifest)
        self._step("Vendor trains, exports and packages its model")
        package = self._package(people, orgs, seed=seed, training_cases=training_cases)
        self._step("Validation team locks the protocol and starts the blind run")
        protocol = protocol_create(
            actor=people["rita"], name="Chest lesion triage, binary", document=protocol_document
        )
        run = run_start(
            actor=people["rita"], package=package, dataset_version=version, protocol=protocol
        )
        run.refresh_from_db()
        if run.status == ValidationRun.Status.FAILED:
            raise CommandError(f"The run failed: {run.error_public}\n{run.error_detail}")
        self.stdout.write(
            f"  run {run.pk}: {run.status}, {run.cases_done}/{run.cases_total} "
            f"cases, stages {run.stage_seconds}"
        )
        self._step("Reviewer and QA approver sign (Part 11)")
        report = Report.objects.get(run=run, version=1, comparison__isnull=True)
        report_sign(
            actor=people["rita"], report=report, password=demo_password("rita"), meaning="reviewed"
        )
        report_sign(
            actor=people["quinn"],
            report=report,
            password=demo_password("quinn"),
            meaning="approved",
        )
        report.refresh_from_db()  # issued by the issue task once the signature committed
        if report.status != Report.Status.ISSUED:
            raise CommandError(f"The report was not issued (status {report.status}).")
        pdf = media_path(report.pdf_path)
        if sha256_file(pdf) != report.pdf_sha256:
            raise CommandError("The stored PDF does not match its recorded hash.")
        verdict = report.document["summary"]["verdict"]
        auc = report.document["primary"]["auc"]
        self.stdout.write(
            self.style.SUCCESS(
                f"\nIssued report {report.reference} v{report.version} in "
                f"{time.perf_counter() - started:.1f} s: verdict {verdict.upper()}, "
                f"AUC {auc['estimate']:.3f} (95% CI {auc['lower']:.3f}-{auc['upper']:.3f})"
            )
        )
        self.stdout.write(f"PDF: {pdf}")
        self.stdout.write(f"PDF SHA-256: {report.pdf_sha256}")
        self.stdout.write(f"Document SHA-256 (Ed25519-signed): {report.issued_document_sha256}")
        return {
            "people": people,
            "orgs": orgs,
            "package": package,
            "version": version,
            "protocol_document": protocol_document,
            "seed": seed,
            "training_cases": training_cases,
            "started": started,
        }

    def _compare(self, context: dict, *, export: Path | None) -> None:
        """Version 1.1 against the demo's version on the same sealed cases: built with
        `supersedes`, submitted and approved like any package, then the comparison run under a
        protocol with a comparison block, and its report signed and issued."""
        people, baseline = context["people"], context["package"]
        self._step(f"Vendor trains version {SUCCESSOR_VERSION} (supersedes {baseline.version})")
        candidate = self._successor(people, context)
        self._step("Validation team locks the comparison protocol and starts the comparison")
        protocol = protocol_create(
            actor=people["rita"],
            name="Chest lesion triage, version comparison",
            document={**context["protocol_document"], "comparison": COMPARISON},
        )
        comparison = comparison_start(
            actor=people["rita"],
            baseline=baseline,
            candidate=candidate,
            dataset_version=context["version"],
            protocol=protocol,
        )
        comparison.refresh_from_db()
        if comparison.status != ComparisonRun.Status.AWAITING_SIGNATURE:
            raise CommandError(
                f"The comparison is {comparison.status}: {comparison.error_public or 'its runs '}"
                "have not finished (without a broker they run here; with one, on its workers)."
            )
        if export is not None:
            self._export_scores(comparison, export)
        self._step("Reviewer and QA approver sign the comparison report (Part 11)")
        report = Report.objects.get(comparison=comparison, version=1)
        report = self._sign(people, report)
        result = comparison.result
        self.stdout.write(
            f"  {result['n_paired']} paired cases ({result['n_pos']} positive), "
            f"{result['n_excluded']} excluded"
        )
        for name, compared in result["overall"].items():
            difference, test = compared["difference"] or {}, compared["test"] or {}
            self.stdout.write(
                f"  {name:<12} {baseline.version} {compared['baseline']['estimate']:.3f}  "
                f"{candidate.version} {compared['candidate']['estimate']:.3f}  difference "
                f"{difference.get('estimate', float('nan')):+.3f} "
                f"[{difference.get('lower', float('nan')):+.3f}, "
                f"{difference.get('upper', float('nan')):+.3f}]  {test.get('name')}: "
                f"statistic {test.get('statistic', float('nan')):.3f}, "
                f"p {test.get('p_value', float('nan')):.4f}"
            )
        for endpoint in report.document["endpoints"]:
            self.stdout.write(f"  {endpoint['sentence']}")
        self.stdout.write(
            self.style.SUCCESS(
                f"\nIssued comparison report {report.reference} v{report.version} in "
                f"{time.perf_counter() - context['started']:.1f} s (since the demo began): "
                f"{str(result['verdict']).upper()}"
            )
        )
        self.stdout.write(f"PDF: {media_path(report.pdf_path)}")
        self.stdout.write(f"PDF SHA-256: {report.pdf_sha256}")

    def _successor(self, people, context: dict) -> ModelPackage:
        from validation.synthetic.cohort import training_arrays
        from validation.synthetic.reference_model import train_reference_model

        seed, baseline = context["seed"], context["package"]
        x, y = training_arrays(
            context["training_cases"], seed + 1000, size=64, site_weights=TRAINING_SITES
        )
        model = train_reference_model(
            x, y, seed=seed + SUCCESSOR_SEED_OFFSET, epochs=SUCCESSOR_EPOCHS
        )
        candidate = self._build_and_submit(
            people, model, x, version=SUCCESSOR_VERSION, supersedes=baseline.version
        )
        if candidate is None or candidate.supersedes_id != baseline.pk:
            raise CommandError(
                f"LesionFinder {SUCCESSOR_VERSION} is taken by a model that does not succeed "
                f"{baseline.version}; run the demo on a fresh var/ (BLINDSPOT_VAR_DIR)."
            )
        if candidate.status == ModelPackage.Status.SUBMITTED:
            candidate = package_review(
                actor=people["rita"], package=candidate, approve=True, note="Version 1.1 reviewed."
            )
        return candidate

    def _sign(self, people, report: Report) -> Report:
        for username, meaning in (("rita", "reviewed"), ("quinn", "approved")):
            report_sign(
                actor=people[username],
                report=report,
                password=demo_password(username),
                meaning=meaning,
            )
        report.refresh_from_db()  # issued by the issue task once the signature committed
        if report.status != Report.Status.ISSUED:
            raise CommandError(f"The report was not issued (status {report.status}).")
        if sha256_file(media_path(report.pdf_path)) != report.pdf_sha256:
            raise CommandError("The stored PDF does not match its recorded hash.")
        return report

    @staticmethod
    def _export_scores(comparison: ComparisonRun, path: Path) -> None:
        """Both versions' scores by case (empty where a version failed on the case): the
        input of the pROC check (tests/validation/stats/reference/demo_comparison_proc.R)."""
        from validation.services.comparisons import comparison_inputs

        inputs = comparison_inputs(comparison)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            out.write("label,baseline,candidate\n")
            for label, b, c in zip(
                inputs["labels"],
                inputs["scores_baseline"],
                inputs["scores_candidate"],
                strict=True,
            ):
                cells = ["" if v != v else repr(float(v)) for v in (b, c)]
                out.write(f"{int(label)},{cells[0]},{cells[1]}\n")

    def _step(self, text: str) -> None:
        self.stdout.write(f"- {text}")

    def _organisations(self) -> dict:
        orgs = {}
        for key, (name, kind) in ORGANISATIONS.items():
            orgs[key] = Organisation.objects.filter(name=name).first() or organisation_create(
                actor=None, name=name, kind=kind
            )
        return orgs

    def _people(self, orgs: dict) -> dict:
        users, model = {}, get_user_model()
        for username, full_name, org_key, role in PEOPLE:
            users[username] = model.objects.filter(username=username).first() or (
                user_create_with_role(
                    actor=None,
                    username=username,
                    password=demo_password(username),
                    full_name=full_name,
                    organisation=orgs[org_key],
                    role=role,
                )
            )
        return users

    def _cohort(self, *, cases: int, seed: int) -> Path:
        from validation.synthetic.cohort import cohort_study_card, generate_cohort

        out = Path(settings.VAR_DIR) / "demo" / f"cohort-{cases}-seed{seed}"
        manifest = out / "manifest.csv"
        if not manifest.exists():
            generate_cohort(out, cases=cases, seed=seed, prevalence=PREVALENCE, shift=SHIFT)
        # The partner's study card travels beside the manifest, as in an import's archive.
        card = cohort_study_card(seed=seed, prevalence=PREVALENCE, shift=SHIFT)
        (out / STUDY_CARD_FILE).write_text(json.dumps(card, indent=2), encoding="utf-8")
        return manifest

    def _dataset(self, steward, orgs, manifest: Path):
        dataset = Dataset.objects.filter(partner=orgs["partner"], name="Chest DX/CR 2026").first()
        if dataset is None:
            dataset = dataset_create(
                actor=steward,
                partner=orgs["partner"],
                name="Chest DX/CR 2026",
                description="Frontal chest radiographs, three sites.",
            )
        version = dataset_version_import(actor=steward, dataset=dataset, source=manifest)
        dataset_grant(
            actor=steward, dataset_version=version, vendor=orgs["vendor"], allow_exemplars=True
        )
        return version

    def _package(self, people, orgs, *, seed: int, training_cases: int) -> ModelPackage:
        from validation.synthetic.cohort import training_arrays
        from validation.synthetic.reference_model import train_reference_model

        x, y = training_arrays(training_cases, seed + 1000, size=64, site_weights=TRAINING_SITES)
        model = train_reference_model(x, y, seed=seed, epochs=10)
        # Identical training reproduces the identical package (reused); a changed model is a
        # new version, as intake requires.
        package = self._build_and_submit(people, model, x, version="1.0.0")
        if package is None:
            taken = ModelPackage.objects.filter(vendor=orgs["vendor"], name="LesionFinder")
            package = self._build_and_submit(people, model, x, version=f"1.0.{taken.count()}")
        if package is None:
            raise CommandError("The demo package's next version is taken by a different model.")
        if package.status == ModelPackage.Status.SUBMITTED:
            package = package_review(
                actor=people["rita"],
                package=package,
                approve=True,
                note="Manifest and intake checks reviewed.",
            )
        return package

    def _build_and_submit(
        self, people, model, x, *, version: str, supersedes: str | None = None
    ) -> ModelPackage | None:
        """Build and submit this version; the existing package if the bytes are known; None if
        the version is taken by a different model."""
        import torch

        from validation.packaging import build_package, default_manifest

        manifest = default_manifest(
            name="LesionFinder",
            version=version,
            gradcam_target_layer="block3",
            training_data={
                "sites": ["Vendor Internal Archive"],
                "scanners": ["Acme DR-500", "Aurora CR-2"],
                "date_range": ["2021-01-01", "2023-12-31"],
            },
            supersedes=supersedes,
        )
        out = Path(settings.VAR_DIR) / "demo" / f"lesionfinder-{version}.tar.gz"
        build_package(
            model=model, example_input=torch.from_numpy(x[:2]), manifest=manifest, out_path=out
        )
        sha = hashlib.sha256(out.read_bytes()).hexdigest()
        current = ModelPackage.objects.exclude(status=ModelPackage.Status.REFUSED)
        existing = current.filter(sha256=sha).first()
        if existing is not None:
            return existing
        if current.filter(name="LesionFinder", version=version).exists():
            return None
        with open(out, "rb") as upload:
            package = package_submit(actor=people["vera"], upload=upload)
        # The smoke test ran on commit (eager, without a broker) or runs on a `gpu` worker.
        deadline = time.monotonic() + 600
        package.refresh_from_db()
        while package.status == ModelPackage.Status.TESTING and time.monotonic() < deadline:
            time.sleep(1)
            package.refresh_from_db()
        if package.status == ModelPackage.Status.TESTING:
            raise CommandError(
                "The demo package is waiting for its smoke test on a worker of the `gpu` queue; "
                "start one, or run the demo without CELERY_BROKER_URL."
            )
        if package.status == ModelPackage.Status.REFUSED:
            raise CommandError(f"The demo package was refused: {package.refusal_reasons}")
        return package
