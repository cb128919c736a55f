"""The console's results, case table and case viewer (issue 16 screens 6-8) with the Django
test client: content, filters, outcomes as the stats compute them, prev/next, PNG images only,
and a CASE_DATA_VIEWED event for every view of case-level data."""

import io

import numpy as np
import pytest
from django.urls import reverse
from PIL import Image

from audit.models import AuditAction, AuditEvent
from tests.support.people import signed_in
from tests.web.console_case_helpers import imaged_run
from validation.models import Prediction
from validation.selectors import run_operating_threshold
from validation.stats.metrics.binary import predict

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(world):
    return imaged_run(world)


def _viewed():
    return AuditEvent.objects.filter(action=AuditAction.CASE_DATA_VIEWED).order_by("id")


def _outcomes(run) -> dict[int, str]:
    """Each case's outcome computed as the stats do (binary.predict at the threshold)."""
    t = run_operating_threshold(run)
    out = {}
    for p in Prediction.objects.filter(run=run).select_related("case"):
        if p.error_category:
            out[p.case_id] = "failed"
            continue
        positive = bool(predict(np.array([p.score]), t)[0])
        out[p.case_id] = {
            (True, 1): "TP",
            (True, 0): "FP",
            (False, 1): "FN",
            (False, 0): "TN",
        }[(positive, p.case.label)]
    return out


def test_results_show_full_precision_subgroups_disparities_and_link_to_cases(world, run):
    response = signed_in(world.reviewer).get(reverse("web:console-run-results", args=[run.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("Primary metrics", "Subgroups", "Disparities", "Calibration", "Localisation"):
        assert text in html
    # The 'X' cell (one case, under the minimum) is shown to the team, marked, not suppressed.
    assert "Under 5" in html
    assert "subgroup=sex%3DF" in html and "outcome=FN" in html
    assert "multiplicity" in html
    # Localisation agreement from the stored explanations.
    assert "6 of 6 Grad-CAM maps have a reference ROI" in html
    chance = response.context["results"]["localisation"]["chance"]
    assert 0 < chance < 1 and f"Chance level {chance:.4f}" in html
    figure = signed_in(world.reviewer).get(reverse("web:console-run-plot", args=[run.pk, "roc"]))
    assert figure.status_code == 200 and figure["Content-Type"] == "image/svg+xml"
    # Aggregates only: no case-level event.
    assert not _viewed().exists()


def test_case_table_filters_by_outcome_as_the_stats_compute_it_and_is_audited(world, run):
    client = signed_in(world.reviewer)
    url = reverse("web:console-run-cases", args=[run.pk])
    expected = {pk for pk, o in _outcomes(run).items() if o == "FN"}
    response = client.get(url, {"outcome": "FN", "sort": "score-asc"})
    assert response.status_code == 200
    shown = [row["p"].case_id for row in response.context["rows"]]
    assert set(shown) == expected and expected
    scores = [row["p"].score for row in response.context["rows"]]
    assert scores == sorted(scores)
    assert "False negative" in response.content.decode()
    event = _viewed().get()
    assert event.target_id == str(run.pk)
    assert event.payload["filters"] == {"outcome": "FN", "sort": "score-asc"}
    assert event.payload["cases_matched"] == len(expected)


def test_case_table_filters_by_subgroup_score_and_site_and_paginates(world, run):
    client = signed_in(world.reviewer)
    url = reverse("web:console-run-cases", args=[run.pk])
    everything = client.get(url)
    assert everything.context["page_obj"].paginator.count == 24
    assert len(everything.context["rows"]) == 24
    females = client.get(url, {"subgroup": "sex=F"})
    assert {r["p"].case.attributes["sex"] for r in females.context["rows"]} == {"F"}
    assert females.context["page_obj"].paginator.count == 12
    band = client.get(url, {"score_min": "0.4", "score_max": "0.6"})
    assert all(0.4 <= r["p"].score <= 0.6 for r in band.context["rows"])
    north = client.get(url, {"site": "North"})
    assert {r["p"].case.attributes["site"] for r in north.context["rows"]} == {"North"}
    assert _viewed().count() == 4


def test_case_table_refuses_a_bad_filter_with_its_reason(world, run):
    client = signed_in(world.reviewer)
    url = reverse("web:console-run-cases", args=[run.pk])
    response = client.get(url, {"subgroup": "shoe=42", "score_min": "0.9", "score_max": "0.1"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "shoe is not a subgroup attribute" in html
    assert "The upper score is below the lower one." in html
    assert not _viewed().exists()


def test_viewer_shows_the_case_with_position_and_audits_one_event(world, run):
    client = signed_in(world.reviewer)
    rows = list(
        Prediction.objects.filter(run=run, case__file_path__startswith="cases/")
        .order_by("-score", "case__case_id")
        .values_list("case_id", flat=True)
    )
    target = rows[1]
    url = reverse("web:console-case", args=[run.pk, target])
    response = client.get(url, {"site": "North"} if False else {})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Grad-CAM opacity" in html and 'type="range"' in html and "case-viewer.js" in html
    assert "image.png?v=" in html and "gradcam.png?v=" in html and "roi.png?v=" in html
    assert response.context["count"] == 24 and response.context["position"] is not None
    assert "data-case-next" in html and "<kbd>j</kbd>" in html
    event = _viewed().get()
    assert event.payload["case"] == target and event.payload["cases"] == 1
    assert "image rendered to PNG" in event.payload["what"]


def test_viewer_images_are_png_and_need_the_pages_token(world, run):
    client = signed_in(world.reviewer)
    case_pk = Prediction.objects.filter(run=run, case__file_path__startswith="cases/")[0].case_id
    page = client.get(reverse("web:console-case", args=[run.pk, case_pk]))
    token = page.context["token"]
    for name in ("console-case-image", "console-case-gradcam", "console-case-roi"):
        url = reverse(f"web:{name}", args=[run.pk, case_pk])
        response = client.get(url, {"v": token})
        assert response.status_code == 200, name
        assert response["Content-Type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        # MR_small: 64 x 64, square pixels; the overlays at 12 times that, same aspect.
        assert image.size == ((64, 64) if name == "console-case-image" else (768, 768))
        assert client.get(url).status_code == 403  # no token: no image
        assert client.get(url, {"v": token + "x"}).status_code == 403
    # The gradcam is RGBA: transparent where cold.
    cam = Image.open(
        io.BytesIO(
            client.get(
                reverse("web:console-case-gradcam", args=[run.pk, case_pk]), {"v": token}
            ).content
        )
    )
    corner = cam.getpixel((0, 0))
    assert cam.mode == "RGBA" and isinstance(corner, tuple) and corner[3] == 0
    # A window the image offers; an unknown one is 404.
    image_url = reverse("web:console-case-image", args=[run.pk, case_pk])
    assert client.get(image_url, {"v": token, "window": "full"}).status_code == 200
    assert client.get(image_url, {"v": token, "window": "lung"}).status_code == 404
    # Another person's token does not open the image.
    other = signed_in(world.qa)
    assert other.get(image_url, {"v": token}).status_code == 403
    assert _viewed().count() == 1  # the page's event covers its images


def test_viewer_prev_next_follow_the_filter(world, run):
    client = signed_in(world.reviewer)
    cases_url = reverse("web:console-run-cases", args=[run.pk])
    listing = client.get(cases_url, {"subgroup": "sex=F", "sort": "score-asc"})
    order = [r["p"].case_id for r in listing.context["rows"]]
    response = client.get(
        reverse("web:console-case", args=[run.pk, order[1]]),
        {"subgroup": "sex=F", "sort": "score-asc"},
    )
    assert response.context["position"] == 2 and response.context["count"] == len(order)
    assert f"/cases/{order[2]}/?" in response.context["next"]
    assert f"/cases/{order[0]}/?" in response.context["previous"]
    assert "subgroup=sex%3DF" in response.context["next"]
    assert f"2 of {len(order)}" in response.content.decode()


def test_auditor_sees_the_record_not_the_image(world, run):
    client = signed_in(world.auditor)
    case_pk = Prediction.objects.filter(run=run, case__file_path__startswith="cases/")[0].case_id
    page = client.get(reverse("web:console-case", args=[run.pk, case_pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Auditors see each case" in html and "image.png" not in html
    image = reverse("web:console-case-image", args=[run.pk, case_pk])
    assert client.get(image, {"v": page.context["token"]}).status_code == 403
    assert _viewed().count() == 1
    assert "image" not in _viewed().get().payload["what"]


def test_a_case_with_a_stored_mask_has_its_contour_outlined(world):
    run = imaged_run(world, with_images=2, masked=True)
    client = signed_in(world.reviewer)
    case = Prediction.objects.filter(run=run, case__mask_path__endswith=".npy")[0].case
    page = client.get(reverse("web:console-case", args=[run.pk, case.pk]))
    assert "the contour of its mask" in page.content.decode()
    response = client.get(
        reverse("web:console-case-roi", args=[run.pk, case.pk]), {"v": page.context["token"]}
    )
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    drawn = np.asarray(Image.open(io.BytesIO(response.content)))[..., 3] > 0
    assert drawn.shape == (768, 768)
    # The disc's contour (centre 0.4, radius 0.2, hole 0.06 of the side): drawn on the disc's
    # rim and the hole's, not at the box's corners nor inside the ring.
    side = 768
    centre = round(0.4 * side)
    assert drawn[centre, round(0.2 * side) + 2]  # the disc's left rim
    assert drawn[centre, round(0.34 * side)]  # the hole's left rim, inside the ring
    assert not drawn[centre, round(0.27 * side)]  # inside the ring itself
    assert not drawn[round(0.2 * side) + 2, round(0.2 * side) + 2]  # the box's corner
    assert not drawn[centre, centre]  # the hole
