from django.contrib.auth import get_user_model
from django.db import transaction

from audit.models import AuditAction
from audit.services import audit_record
from validation.errors import ApplicationError
from validation.models import Membership, Organisation, Role

ROLE_ORGANISATION_KINDS: dict[str, set[str]] = {
    Role.VENDOR_MEMBER: {Organisation.Kind.VENDOR},
    Role.PARTNER_STEWARD: {Organisation.Kind.PARTNER},
    Role.REVIEWER: {Organisation.Kind.VALIDATOR},
    Role.QA_APPROVER: {Organisation.Kind.VALIDATOR},
    # "Anyone granted it": auditors may sit in any organisation.
    Role.AUDITOR: set(Organisation.Kind.values),
}


@transaction.atomic
def organisation_create(*, actor, name: str, kind: str) -> Organisation:
    """Create an organisation. Emits ORGANISATION_CREATED."""
    if kind not in Organisation.Kind.values:
        raise ApplicationError(f"Unknown organisation kind {kind!r}.")
    if Organisation.objects.filter(name=name).exists():
        raise ApplicationError(f"An organisation named {name!r} already exists.")
    org = Organisation.objects.create(name=name, kind=kind)
    audit_record(
        actor=actor,
        action=AuditAction.ORGANISATION_CREATED,
        target=org,
        payload={"name": name, "kind": kind},
    )
    return org


@transaction.atomic
def user_create_with_role(
    *, actor, username: str, password: str, full_name: str, organisation: Organisation, role: str
):
    """Create a user and give them one role in one organisation. Emits MEMBERSHIP_GRANTED."""
    if organisation.kind not in ROLE_ORGANISATION_KINDS.get(role, set()):
        raise ApplicationError(f"The role {role!r} does not belong in a {organisation.kind}.")
    first, _, last = full_name.partition(" ")
    user = get_user_model().objects.create_user(
        username=username, password=password, first_name=first, last_name=last
    )
    membership = Membership.objects.create(user=user, organisation=organisation, role=role)
    audit_record(
        actor=actor,
        action=AuditAction.MEMBERSHIP_GRANTED,
        target=membership,
        payload={"user": username, "organisation": organisation.name, "role": role},
    )
    return user
