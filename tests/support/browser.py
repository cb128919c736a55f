"""What browser journeys share: sign-in, a screenshot of every page looked at, axe on every
page, and a guard that fails the test on any request leaving the machine or any server error."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from axe_playwright_python.sync_playwright import Axe
from django.conf import settings

# Screenshots go to the project's var/ (ignored by git), where people open them.
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
SERIOUS = {"serious", "critical"}
_axe = Axe()


@dataclass
class Guard:
    """Watches one browser context: every request must go to the live server; no response may
    be a server error; no page may log a Content-Security-Policy violation."""

    origin: str
    outside: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def watch(self, context) -> None:
        host = urlparse(self.origin).netloc

        def route(r) -> None:
            url = r.request.url
            if url.startswith("data:") or urlparse(url).netloc == host:
                r.continue_()
            else:
                self.outside.append(url)
                r.abort()

        def response(resp) -> None:
            if resp.status >= 500:
                self.server_errors.append(f"{resp.status} {resp.url}")

        context.route("**/*", route)
        context.on("response", response)

    def watch_page(self, page) -> None:
        def console(msg) -> None:
            if msg.type == "error" and re.search(r"Content.Security.Policy|Refused to", msg.text):
                self.console_errors.append(msg.text)

        page.on("console", console)

    def assert_clean(self) -> None:
        assert not self.outside, f"requests left the machine: {self.outside}"
        assert not self.server_errors, f"server errors: {self.server_errors}"
        assert not self.console_errors, f"CSP violations: {self.console_errors}"


def axe_violations(page) -> list[str]:
    """axe-core (bundled, offline) on the page as it stands: its serious and critical
    violations, each with the first offending elements."""
    results = _axe.run(page, options={"resultTypes": ["violations"], "preload": False})
    found = []
    for v in results.response["violations"]:
        if v.get("impact") in SERIOUS:
            targets = [", ".join(n["target"]) for n in v["nodes"][:3]]
            found.append(f"{v['id']} ({v['impact']}): {v['help']} at {targets}")
    return found


def look(page, name: str) -> None:
    """Save a screenshot of the page (var/screenshots/<name>.png) and fail on any serious or
    critical accessibility violation on it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    violations = axe_violations(page)
    assert not violations, f"{name}: accessibility violations: {violations}"


def sign_in(page, origin: str, username: str, password: str) -> None:
    page.goto(f"{origin}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
