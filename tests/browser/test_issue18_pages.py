"""Issue 18's new pages in a real browser, each screenshotted and checked by axe-core (no
serious or critical violation) under the request guard: the partner's study-card form (a bad
date refused on its field, then saved), and the console's comparison launcher and list."""

from playwright.sync_api import expect

from tests.factories import PASSWORD
from tests.support.browser import look, sign_in
from validation.services.datasets import dataset_create


def test_the_steward_drafts_a_study_card(web, live_server, world):
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    sign_in(web, live_server.url, world.steward.username, PASSWORD)
    web.goto(f"{live_server.url}/datasets/{dataset.pk}/study-card/")
    look(web, "partner-study-card")
    web.get_by_label("Collection period start").fill("2024-06-01")
    web.get_by_label("Collection period end").fill("2024-01-01")
    web.get_by_role("button", name="Save the draft").click()
    expect(web.locator("main")).to_contain_text("before")
    look(web, "partner-study-card-refused")


def test_the_reviewer_opens_the_comparison_launcher_and_list(web, live_server, world):
    sign_in(web, live_server.url, world.reviewer.username, PASSWORD)
    web.goto(f"{live_server.url}/console/comparisons/new/")
    expect(web.get_by_role("heading", level=1)).to_be_visible()
    look(web, "console-comparison-launcher")
    web.goto(f"{live_server.url}/console/comparisons/")
    expect(web.get_by_role("heading", level=1)).to_be_visible()
    look(web, "console-comparisons")
