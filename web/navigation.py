"""Each role's navigation: only what that role may use."""

from dataclasses import dataclass

from django.http import HttpRequest
from django.urls import reverse

from validation.models import Role
from web.access import TEAM_ROLES, roles


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    section: str  # views set `section` in their context; the matching item is marked current

    @property
    def url(self) -> str:
        return reverse(self.url_name)


VENDOR = [
    NavItem("Packages", "web:packages", "packages"),
    NavItem("Runs", "web:runs", "runs"),
    NavItem("Dataset cards", "web:dataset-cards", "dataset-cards"),
    NavItem("API tokens", "web:tokens", "tokens"),
]
PARTNER = [
    NavItem("Datasets", "web:datasets", "datasets"),
    NavItem("Grants", "web:grants", "grants"),
    NavItem("Usage log", "web:usage", "usage"),
]
# The review console: the validation team acts there, auditors read it.
TEAM = [
    NavItem("Work queue", "web:console", "console"),
    NavItem("Packages", "web:console-packages", "console-packages"),
    NavItem("Protocols", "web:console-protocols", "protocols"),
    NavItem("Runs", "web:console-runs", "console-runs"),
    NavItem("Comparisons", "web:console-comparisons", "console-comparisons"),
    NavItem("Audit trail", "web:console-audit", "console-audit"),
]
# Reports and their verification: vendors, partners, the team and auditors alike.
EVERYONE = [
    NavItem("Reports", "web:reports", "reports"),
    NavItem("Verify a PDF", "web:verify", "verify"),
]


def navigation_for(request: HttpRequest) -> list[NavItem]:
    held = roles(request)
    items: list[NavItem] = []
    if Role.VENDOR_MEMBER in held:
        items += VENDOR
    if Role.PARTNER_STEWARD in held:
        items += PARTNER
    if held & TEAM_ROLES:
        items += TEAM
    return items + EVERYONE
