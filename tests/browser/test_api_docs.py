"""The API's documentation page renders in a real browser from the project's own static files,
under the strict Content-Security-Policy, with nothing fetched from another host."""

from playwright.sync_api import expect

from tests.support.browser import SCREENSHOTS


def test_the_api_documentation_renders_without_a_token_or_another_host(web, live_server):
    web.goto(live_server.url + "/api/v1/docs/")
    expect(web.get_by_role("heading", name="Blindspot API")).to_be_visible()
    expect(web.get_by_text("/api/v1/runs/{id}/results/").first).to_be_visible()
    web.get_by_text("/api/v1/runs/{id}/results/").first.click()
    expect(web.get_by_text("application/problem+json").first).to_be_attached()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    web.screenshot(path=str(SCREENSHOTS / "api-docs.png"), full_page=False)
