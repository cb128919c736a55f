"""The console's results, case table and case viewer in a real browser, on a run scored by the
real scoring service whose cases carry real DICOM in the sequestered store and real Grad-CAM
maps: a reviewer goes from a run's results to a subgroup's cases, filters them by outcome,
opens a case, sees the three image layers load, changes the Grad-CAM opacity, moves to the next
case with the keyboard, and every view is in the audit trail. An auditor reads a case's record
and is told why there is no image."""

import re

from playwright.sync_api import expect

from audit.models import AuditAction, AuditEvent
from tests.factories import PASSWORD
from tests.support.browser import look, sign_in
from tests.web.console_case_helpers import imaged_run
from validation import selectors

LAYERS_LOADED = """() => {
  const imgs = [...document.querySelectorAll('.case-stage img')];
  return imgs.length === 3 && imgs.every((i) => i.complete && i.naturalWidth > 0);
}"""


def _viewed():
    return AuditEvent.objects.filter(action=AuditAction.CASE_DATA_VIEWED).order_by("id")


def _outcome_with_cases(run, subgroup: tuple[str, str]) -> tuple[str, list[str]]:
    """An outcome with at least two cases in the subgroup, and those cases' ids in the table's
    order (highest score first)."""
    for outcome in ("FN", "FP", "TP", "TN"):
        rows = selectors.run_case_rows(run, subgroup=subgroup, outcome=outcome)
        ids = [p.case.case_id for p in rows.select_related("case")]
        if len(ids) >= 2:
            return outcome, ids
    raise AssertionError("the run has no outcome with two cases in the subgroup")


def test_a_reviewer_reviews_a_subgroups_cases_in_the_viewer(web, live_server, world):
    run = imaged_run(world, with_images=24, masked=True)
    outcome, ids = _outcome_with_cases(run, ("sex", "F"))
    sign_in(web, live_server.url, "reviewer", PASSWORD)

    web.goto(f"{live_server.url}/console/runs/{run.pk}/results/")
    expect(web.get_by_role("heading", level=1)).to_have_text(f"Results of run {run.pk}")
    expect(web.get_by_role("heading", name="Subgroups")).to_be_visible()
    expect(web.locator("img[src$='roc.svg']")).to_be_visible()
    look(web, "console-results")
    assert not _viewed().exists()  # aggregates only: no case-level data yet

    # The subgroup row opens its cases.
    web.get_by_role("link", name="Cases of sex F").click()
    expect(web.get_by_role("heading", level=1)).to_have_text(f"Cases of run {run.pk}")
    expect(web.get_by_label("Subgroup")).to_have_value("sex=F")
    all_female = selectors.run_case_rows(run, subgroup=("sex", "F")).count()
    expect(web.locator("#h-cases")).to_have_text(f"{all_female} cases")
    look(web, "console-cases")

    # Filtered to one outcome: only those cases, highest score first.
    web.get_by_label("Outcome").select_option(outcome)
    web.get_by_role("button", name="Apply").click()
    expect(web.locator("#h-cases")).to_have_text(f"{len(ids)} cases")
    rows = web.locator("table.rows tbody tr")
    expect(rows).to_have_count(len(ids))
    expect(rows.locator("th")).to_have_text(ids)
    look(web, "console-cases-filtered")

    # The first case: the image, its Grad-CAM map and its ROI outline all load, as PNG.
    web.get_by_role("link", name=ids[0], exact=True).click()
    expect(web.get_by_role("heading", level=1)).to_have_text(f"Case {ids[0]}")
    expect(web.locator(".case-nav__position")).to_have_text(f"1 of {len(ids)}")
    web.wait_for_function(LAYERS_LOADED)
    for img in web.locator(".case-stage img").all():
        assert "image/png" in (web.request.get(img.evaluate("i => i.src")).headers["content-type"])
    overlay = web.locator("[data-cam-overlay]")
    expect(overlay).to_have_css("opacity", "0.7")
    look(web, "console-case")

    # The opacity slider changes the Grad-CAM layer's opacity.
    web.get_by_label("Grad-CAM opacity").fill("30")
    expect(overlay).to_have_css("opacity", "0.3")
    expect(web.locator("[data-cam-opacity-value]")).to_have_text("30%")

    # The next-case key: the next case of the same filter.
    web.get_by_role("heading", level=1).click()  # focus off the slider
    web.keyboard.press("j")
    expect(web.get_by_role("heading", level=1)).to_have_text(f"Case {ids[1]}")
    expect(web.locator(".case-nav__position")).to_have_text(f"2 of {len(ids)}")
    expect(web).to_have_url(re.compile(rf"outcome={outcome}"))
    web.wait_for_function(LAYERS_LOADED)
    look(web, "console-case-next")
    web.set_viewport_size({"width": 1920, "height": 1080})
    web.wait_for_function(LAYERS_LOADED)
    look(web, "console-case-1920")
    web.set_viewport_size({"width": 1280, "height": 900})

    # The audit trail: the two table views (subgroup, then subgroup and outcome), each case.
    events = list(_viewed())
    assert [e.actor_id for e in events] == [world.reviewer.pk] * 4
    assert all(e.target_id == str(run.pk) for e in events)
    tables, cases = events[:2], events[2:]
    assert tables[0].payload["filters"] == {"subgroup": "sex=F"}
    assert tables[0].payload["cases_matched"] == all_female
    assert tables[1].payload["filters"] == {
        "subgroup": "sex=F",
        "outcome": outcome,
        "sort": "score-desc",
    }
    assert tables[1].payload["cases_matched"] == len(ids)
    assert [e.payload["case_id"] for e in cases] == ids[:2]
    assert all("image rendered to PNG" in e.payload["what"] for e in cases)


def test_an_auditor_reads_a_cases_record_without_its_image(web, live_server, world):
    run = imaged_run(world)
    # A case with a stored image and a Grad-CAM map: the team would see them.
    case = next(p.case for p in selectors.run_case_rows(run).select_related("case") if p.case.roi)
    sign_in(web, live_server.url, "auditor", PASSWORD)
    web.goto(f"{live_server.url}/console/runs/{run.pk}/cases/")
    web.get_by_role("link", name=case.case_id, exact=True).click()
    expect(web.get_by_role("heading", level=1)).to_have_text(f"Case {case.case_id}")
    expect(web.locator("#h-record")).to_be_visible()
    expect(web.locator(".facts").first).to_contain_text("Score")
    expect(web.locator(".case-stage img")).to_have_count(0)
    expect(web.get_by_text("Auditors see each case's record")).to_be_visible()
    look(web, "console-case-auditor")
    # Refused even with a guessed URL: images are the team's.
    response = web.request.get(f"{live_server.url}/console/runs/{run.pk}/cases/{case.pk}/image.png")
    assert response.status == 403
    events = list(_viewed())
    assert [e.actor_id for e in events] == [world.auditor.pk] * 2
    assert events[1].payload["case_id"] == case.case_id
    assert "image" not in events[1].payload["what"]
