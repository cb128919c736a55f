"""The people of the `world` fixture (tests/conftest.py) by attribute name, and a client signed
in as one of them: what the permission matrices of the API and the pages iterate over."""

from django.test import Client

# Every role, each in its own organisation and in the other one of its kind.
WORLD_PEOPLE = [
    "vendor_user",
    "other_vendor_user",
    "steward",
    "other_steward",
    "reviewer",
    "qa",
    "auditor",
]


def signed_in(user) -> Client:
    """A test client with `user`'s session (no password check, no sign-in event)."""
    client = Client()
    client.force_login(user)
    return client
