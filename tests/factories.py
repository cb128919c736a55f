"""factory_boy factories for the domain; role fixtures live in tests/conftest.py."""

import hashlib
import itertools
from pathlib import Path

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.utils import timezone

from reports.models import Report
from validation.models import (
    Case,
    Dataset,
    DatasetVersion,
    Membership,
    ModelPackage,
    Organisation,
    Protocol,
    ValidationRun,
)
from validation.packaging import read_package_contents
from validation.protocol_document import protocol_hash
from validation.storage import media_put, package_relpath

_counter = itertools.count(1)
PASSWORD = "correct horse battery staple"


def protocol_document(**overrides) -> dict:
    """A valid protocol document for tests; override any top-level key."""
    return {
        "schema_version": "1.0",
        "task": "binary-classification",
        "primary_endpoint": "auc",
        "operating_point": {"source": "vendor-declared"},
        "acceptance_criteria": [
            {"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.5}
        ],
        "subgroups": [{"attribute": "sex"}],
        "min_cell_size": 3,
        **overrides,
    }


def _sha(n) -> str:
    return hashlib.sha256(f"blob-{n}".encode()).hexdigest()


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj: User, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganisationFactory(factory.django.DjangoModelFactory[Organisation]):
    class Meta:
        model = Organisation

    name = factory.Sequence(lambda n: f"Organisation {n}")
    kind = Organisation.Kind.VENDOR


def member(org: Organisation, role: str, **user_fields):
    user = UserFactory.create(**user_fields)
    Membership.objects.create(user=user, organisation=org, role=role)
    return user


class PackageFactory(factory.django.DjangoModelFactory[ModelPackage]):
    class Meta:
        model = ModelPackage

    vendor = factory.SubFactory(OrganisationFactory, kind=Organisation.Kind.VENDOR)
    name = "Model"
    version = factory.Sequence(lambda n: f"1.{n}")
    sha256 = factory.Sequence(_sha)
    size_bytes = 1000
    manifest = factory.LazyFunction(lambda: {"threshold": 0.5})
    model_format = "pt2"
    submitted_by = factory.SubFactory(UserFactory)


class DatasetVersionFactory(factory.django.DjangoModelFactory[DatasetVersion]):
    class Meta:
        model = DatasetVersion

    dataset = factory.LazyFunction(
        lambda: Dataset.objects.create(
            partner=OrganisationFactory.create(kind=Organisation.Kind.PARTNER),
            name=f"Dataset {next(_counter)}",
        )
    )
    version = 1
    status = DatasetVersion.Status.SEALED
    merkle_root = factory.Sequence(_sha)
    sealed_at = factory.LazyFunction(timezone.now)
    created_by = factory.SubFactory(UserFactory)


class ProtocolFactory(factory.django.DjangoModelFactory[Protocol]):
    class Meta:
        model = Protocol

    name = factory.Sequence(lambda n: f"Protocol {n}")
    version = 1
    document = factory.LazyFunction(lambda: {"schema_version": "1.0", "min_cell_size": 10})
    created_by = factory.SubFactory(UserFactory)


class RunFactory(factory.django.DjangoModelFactory[ValidationRun]):
    class Meta:
        model = ValidationRun

    package = factory.SubFactory(PackageFactory)
    dataset_version = factory.SubFactory(DatasetVersionFactory)
    protocol = factory.SubFactory(ProtocolFactory)
    requested_by = factory.SubFactory(UserFactory)


class ReportFactory(factory.django.DjangoModelFactory[Report]):
    class Meta:
        model = Report

    run = factory.SubFactory(RunFactory)
    document = factory.LazyFunction(lambda: {"schema_version": "1.0"})
    content_sha256 = factory.LazyAttribute(lambda o: protocol_hash(o.document))


def issued_report(run: ValidationRun) -> Report:
    """A report row in its issued state (as _report_issue leaves it), for access tests."""
    return Report.objects.create(
        run=run,
        document={"x": 1},
        content_sha256=_sha("c"),
        status=Report.Status.ISSUED,
        issued_at=timezone.now(),
        pdf_sha256=_sha(f"pdf{run.pk}"),
        service_signature="sig",
        pdf_path=f"reports/test-{run.pk}.pdf",
    )


class CaseFactory(factory.django.DjangoModelFactory[Case]):
    class Meta:
        model = Case

    dataset_version = factory.SubFactory(DatasetVersionFactory)
    case_id = factory.Sequence(lambda n: f"C{n:05d}")
    file_path = "dicom/x.dcm"
    file_sha256 = factory.Sequence(_sha)
    label = 0


def approved_package(world, package_path: Path) -> ModelPackage:
    """The package at `package_path` as intake stores it once a reviewer approved it (archive
    kept content-addressed, manifest and format as intake's reader finds them), without intake's
    sandboxed smoke test: for tests that are not about intake, which go through
    `package_submit`. Submitted by `world.vendor_user` for `world.vendor_a`."""
    data = Path(package_path).read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    manifest, _model_bytes, model_format = read_package_contents(Path(package_path))
    media_put(package_relpath(sha256), data)
    return ModelPackage.objects.create(
        vendor=world.vendor_a,
        name=manifest["name"],
        version=manifest["version"],
        sha256=sha256,
        size_bytes=len(data),
        manifest=manifest,
        model_format=model_format,
        submitted_by=world.vendor_user,
        status=ModelPackage.Status.APPROVED,
        reviewed_by=world.reviewer,
        reviewed_at=timezone.now(),
        review_note="Approved by a test fixture.",
    )
