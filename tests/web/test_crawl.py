"""Every page each role reaches by following links answers 200: no server error, no broken link,
no link to a page the role may not open (a 403 or 404 behind a link shown to them is a bug)."""

import pytest
from django.test import Client

from tests.factories import PASSWORD, RunFactory, issued_report
from tests.support.crawl import crawl
from tests.support.people import WORLD_PEOPLE
from tests.web.console_case_helpers import imaged_run
from tests.web.vendor_helpers import package_of
from validation.models import ComparisonRun, DatasetGrant, ModelPackage, ValidationRun

pytestmark = pytest.mark.django_db

ROLES = WORLD_PEOPLE


@pytest.fixture
def busy_world(world):
    """Vendor A's run on partner A's data, every case a real stored DICOM with a Grad-CAM map,
    scored by the real service, its report issued, the version granted to vendor A; vendor B
    with an approved package of its own."""
    run = imaged_run(world, n=12, with_images=12)
    ValidationRun.objects.filter(pk=run.pk).update(status=ValidationRun.Status.ISSUED)
    issued_report(run)
    DatasetGrant.objects.create(
        dataset_version=run.dataset_version, vendor=world.vendor_a, granted_by=world.steward
    )
    package_of(world.vendor_b, world.other_vendor_user, status=ModelPackage.Status.APPROVED)
    # A comparison of the run with an earlier one of vendor A on the same cases (issue 18).
    baseline = RunFactory.create(
        package=package_of(world.vendor_a, version="0.9"),
        dataset_version=run.dataset_version,
        protocol=run.protocol,
    )
    ComparisonRun.objects.create(baseline=baseline, candidate=run, requested_by=world.reviewer)
    return world


@pytest.mark.parametrize("who", ROLES)
def test_every_page_a_role_reaches_by_links_opens(busy_world, who):
    client = Client()
    assert (
        client.post(
            "/accounts/login/",
            {"username": getattr(busy_world, who).username, "password": PASSWORD},
        ).status_code
        == 302
    )
    visits = crawl(client, per_shape=2)
    broken = [f"{v.url} ({v.status}, linked from {v.found_on})" for v in visits if v.status != 200]
    assert not broken, broken
    assert len(visits) >= 4  # the overview, reports, verification, and the role's own pages
