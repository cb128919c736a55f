"""Each role's navigation: only what that role may use."""

from dataclasses import dataclass

from django.http import HttpRequest
from django.urls import reverse

from validation.models import Role
from web.access import roles


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    section: str  # views set `section` in their context; the matching item is marked current

    @property
    def url(self) -> str:
        return reverse(self.url_name)


VENDOR: list[NavItem] = []
PARTNER: list[NavItem] = []
# Reports and their verification: vendors, partners, the team and auditors alike.
EVERYONE: list[NavItem] = []


def navigation_for(request: HttpRequest) -> list[NavItem]:
    held = roles(request)
    items: list[NavItem] = []
    if Role.VENDOR_MEMBER in held:
        items += VENDOR
    if Role.PARTNER_STEWARD in held:
        items += PARTNER
    return items + EVERYONE
