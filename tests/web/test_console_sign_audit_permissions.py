"""Who may open the signing page, its fragments, page images and forms, and the audit trail
and its CSV: the validation team and auditors read; only the team acts (auditors 403 on
every POST); vendors and stewards, whether the report is of their own organisation's run or
not, get 403; anonymous people go to sign in; a missing report is 404."""

import pytest
from django.urls import reverse

from reports.canonical import UNHASHED_KEYS, content_sha256
from reports.models import Report
from reports.services import report_pages_make
from tests.factories import RunFactory
from tests.support.people import WORLD_PEOPLE, signed_in
from tests.support.sample_document import sample_document
from validation.models import ValidationRun

pytestmark = pytest.mark.django_db

READERS = {"reviewer", "qa", "auditor"}
ACTORS = {"reviewer", "qa"}


@pytest.fixture(scope="module")
def shared_var(tmp_path_factory):
    return tmp_path_factory.mktemp("var")


@pytest.fixture(autouse=True)
def _var(settings, shared_var):
    settings.VAR_DIR = shared_var  # the sample's page images are made once for the module


@pytest.fixture
def reports(world):
    """A report awaiting signature of a run of vendor A's package on partner A's data, and one
    of vendor B on partner B."""
    made = {}
    for key, vendor, partner in (
        ("own", world.vendor_a, world.partner_a),
        ("other", world.vendor_b, world.partner_b),
    ):
        run = RunFactory.create(
            status=ValidationRun.Status.AWAITING_SIGNATURE, package__vendor=vendor
        )
        run.dataset_version.dataset.partner = partner
        run.dataset_version.dataset.save()
        document = {k: v for k, v in sample_document().items() if k not in UNHASHED_KEYS}
        made[key] = Report.objects.create(
            run=run,
            document=document,
            content_sha256=content_sha256(document),
            required_signatures=["reviewed", "approved"],
        )
        report_pages_make(report_id=made[key].pk)  # what a reports worker does when asked
    return made


READS = {
    "sign": lambda pk: reverse("web:console-report-sign", args=[pk]),
    "status": lambda pk: reverse("web:console-report-sign-status", args=[pk]),
    "page": lambda pk: reverse("web:console-report-page", args=[pk, 1]),
}
WRITES = {
    "submit": lambda pk: reverse("web:console-report-sign-submit", args=[pk]),
    "correct": lambda pk: reverse("web:console-report-correct", args=[pk]),
}
LISTS = {"audit": reverse("web:console-audit"), "audit-csv": reverse("web:console-audit-csv")}


@pytest.mark.parametrize("page", list(READS))
@pytest.mark.parametrize("whose", ["own", "other"])
@pytest.mark.parametrize("person", WORLD_PEOPLE)
def test_report_reads(world, reports, person, whose, page):
    url = READS[page](reports[whose].pk)
    response = signed_in(getattr(world, person)).get(url)
    assert response.status_code == (200 if person in READERS else 403)


@pytest.mark.parametrize("page", list(WRITES))
@pytest.mark.parametrize("person", WORLD_PEOPLE)
def test_report_writes(world, reports, person, page):
    """An empty form: the team gets its problems back (400); nobody else gets that far."""
    response = signed_in(getattr(world, person)).post(WRITES[page](reports["own"].pk), {})
    assert response.status_code == (400 if person in ACTORS else 403)
    assert not reports["own"].signatures.exists()


@pytest.mark.parametrize("page", [*READS, *WRITES])
@pytest.mark.parametrize("person", ["reviewer", "qa", "auditor"])
def test_a_missing_report_is_404(world, person, page):
    url = {**READS, **WRITES}[page](987654)
    client = signed_in(getattr(world, person))
    response = client.get(url) if page in READS else client.post(url, {"password": "x"})
    expected = 403 if page in WRITES and person == "auditor" else 404
    assert response.status_code == expected


@pytest.mark.parametrize("page", list(LISTS))
@pytest.mark.parametrize("person", WORLD_PEOPLE)
def test_the_audit_trail(world, person, page):
    response = signed_in(getattr(world, person)).get(LISTS[page])
    assert response.status_code == (200 if person in READERS else 403)


@pytest.mark.parametrize(
    "url",
    [
        *LISTS.values(),
        reverse("web:console-report-sign", args=[1]),
        reverse("web:console-report-sign-status", args=[1]),
        reverse("web:console-report-page", args=[1, 1]),
    ],
)
def test_anonymous_people_go_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("web:login"))


@pytest.mark.parametrize("url", [WRITES["submit"](1), WRITES["correct"](1)])
def test_anonymous_posts_go_to_sign_in(client, url):
    response = client.post(url, {})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("web:login"))
