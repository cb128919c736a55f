"""Who may open which page: roles read once per request, and the decorators views use.

Objects are scoped by the selectors (a hidden object answers 404 like a missing one); these
decorators only keep a person off pages of a role they do not hold (403, saying which role)."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from validation import selectors
from validation.models import Role

ROLE_NAMES = {
    Role.VENDOR_MEMBER: "vendor members",
    Role.PARTNER_STEWARD: "partner stewards",
    Role.REVIEWER: "reviewers",
    Role.QA_APPROVER: "QA approvers",
    Role.AUDITOR: "auditors",
}

ROLE_LABELS = {
    Role.VENDOR_MEMBER: "vendor member",
    Role.PARTNER_STEWARD: "partner steward",
    Role.REVIEWER: "reviewer",
    Role.QA_APPROVER: "QA approver",
    Role.AUDITOR: "auditor",
}

# The review console's readers: the validation team acts there, auditors read.
TEAM_ROLES = {Role.REVIEWER, Role.QA_APPROVER, Role.AUDITOR}


def roles(request: HttpRequest) -> set[str]:
    """The signed-in person's roles, read once per request."""
    cached = getattr(request, "_blindspot_roles", None)
    if cached is None:
        cached = selectors.roles_of(request.user)
        request._blindspot_roles = cached  # type: ignore[attr-defined]
    return cached


def role_required(*allowed: str) -> Callable:
    """Signed in (else to the sign-in page) and holding one of `allowed` (else 403)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(request: HttpRequest, *args, **kwargs):
            if not roles(request) & set(allowed):
                names = " and ".join(ROLE_NAMES[Role(r)] for r in allowed)
                raise PermissionDenied(f"This page is for {names}.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


vendor_required = role_required(Role.VENDOR_MEMBER)
steward_required = role_required(Role.PARTNER_STEWARD)
