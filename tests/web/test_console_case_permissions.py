"""Who opens the console's results, case table, case viewer and case images: every role of the
world against a run of its own organisations and another's. Vendors and stewards: 403 (the
console is the validation team's); reviewers and QA: 200; auditors: 200 for the pages, 403 for
the images (they see each case's record, not its pixels); anonymous: to sign-in."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.support.people import WORLD_PEOPLE, signed_in
from tests.web.console_case_helpers import imaged_run
from validation.models import Prediction

pytestmark = pytest.mark.django_db

PAGES = {
    "vendor_user": 403,
    "other_vendor_user": 403,
    "steward": 403,
    "other_steward": 403,
    "reviewer": 200,
    "qa": 200,
    "auditor": 200,
}
IMAGES = {**PAGES, "auditor": 403}


def _urls(run, case_pk, token=""):
    args = [run.pk, case_pk]
    return {
        "results": reverse("web:console-run-results", args=[run.pk]),
        "plot": reverse("web:console-run-plot", args=[run.pk, "roc"]),
        "cases": reverse("web:console-run-cases", args=[run.pk]),
        "case": reverse("web:console-case", args=args),
        "image": reverse("web:console-case-image", args=args) + f"?v={token}",
        "gradcam": reverse("web:console-case-gradcam", args=args) + f"?v={token}",
        "roi": reverse("web:console-case-roi", args=args) + f"?v={token}",
    }


@pytest.fixture
def run(world):
    return imaged_run(world, n=12, with_images=2)


def _imaged_case(run) -> int:
    return Prediction.objects.filter(run=run, case__file_path__startswith="cases/")[0].case_id


@pytest.mark.parametrize("person", WORLD_PEOPLE)
def test_each_role_against_each_page(world, run, person):
    user = getattr(world, person)
    client = signed_in(user)
    case_pk = _imaged_case(run)
    page = client.get(reverse("web:console-case", args=[run.pk, case_pk]))
    token = page.context["token"] if page.status_code == 200 else ""
    for name, url in _urls(run, case_pk, token).items():
        expected = IMAGES[person] if name in ("image", "gradcam", "roi") else PAGES[person]
        assert client.get(url).status_code == expected, (person, name)


@pytest.mark.parametrize("person", ["reviewer", "qa", "auditor"])
def test_a_missing_run_or_a_case_of_another_version_is_404(world, run, person):
    client = signed_in(getattr(world, person))
    other = imaged_run(world, n=12, with_images=1, other=True)
    foreign_case = _imaged_case(other)
    assert client.get(reverse("web:console-run-results", args=[999999])).status_code == 404
    assert client.get(reverse("web:console-run-cases", args=[999999])).status_code == 404
    assert client.get(reverse("web:console-case", args=[run.pk, foreign_case])).status_code == 404


@pytest.mark.parametrize("name", ["results", "cases", "case", "image"])
def test_anonymous_goes_to_sign_in(world, run, name):
    response = Client().get(_urls(run, _imaged_case(run))[name])
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_case_table_lists_only_this_runs_cases(world, run):
    other = imaged_run(world, n=12, with_images=0, other=True)
    response = signed_in(world.reviewer).get(reverse("web:console-run-cases", args=[run.pk]))
    shown = {row["p"].case_id for row in response.context["rows"]}
    assert shown == set(Prediction.objects.filter(run=run).values_list("case_id", flat=True))
    assert not shown & set(Prediction.objects.filter(run=other).values_list("case_id", flat=True))
