"""Named API tokens: the service (secret shown once, only its hash stored, audited), the API
authentication (Token and Bearer; revoked and expired refused; last use noted at most once a
minute), and the page (create, list, revoke with a confirmation)."""

import hashlib
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from tests.support.people import signed_in
from validation.errors import ApplicationError
from validation.models import ApiToken
from validation.services.tokens import api_token_create, api_token_revoke

pytestmark = pytest.mark.django_db

PACKAGES = "/api/v1/packages/"


def api(secret: str, scheme: str = "Token"):
    return Client().get(PACKAGES, headers={"Authorization": f"{scheme} {secret}"})


# --- the service ---------------------------------------------------------------------------------


def test_a_token_is_created_with_only_its_hash_stored_and_audited_without_the_secret(
    world, settings
):
    settings.API_TOKEN_TTL_DAYS = 90
    token, secret = api_token_create(actor=world.vendor_user, name="  CI upload  ")
    assert secret.startswith("bs_") and len(secret) > 40
    assert token.name == "CI upload" and secret.startswith(token.prefix)
    assert token.key_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert token.expires_at is not None
    assert timedelta(days=89) < token.expires_at - timezone.now() <= timedelta(days=90)
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert secret not in json.dumps(stored, default=str)
    event = AuditEvent.objects.get(action=AuditAction.API_TOKEN_CREATED)
    assert event.actor == world.vendor_user and event.target_id == str(token.pk)
    assert event.payload["name"] == "CI upload" and event.payload["prefix"] == token.prefix
    every_event = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert secret not in every_event and token.key_sha256 not in every_event


def test_a_zero_lifetime_means_the_token_never_expires(world, settings):
    settings.API_TOKEN_TTL_DAYS = 0
    token, _ = api_token_create(actor=world.vendor_user, name="forever")
    assert token.expires_at is None


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_token_needs_a_name_of_reasonable_length(world, name):
    with pytest.raises(ApplicationError):
        api_token_create(actor=world.vendor_user, name=name)
    assert not ApiToken.objects.exists()


def test_only_the_owner_revokes_a_token_and_it_is_audited_once(world):
    token, _ = api_token_create(actor=world.vendor_user, name="script")
    with pytest.raises(ApplicationError):
        api_token_revoke(actor=world.other_vendor_user, token=token)
    token.refresh_from_db()
    assert token.revoked_at is None
    api_token_revoke(actor=world.vendor_user, token=token)
    api_token_revoke(actor=world.vendor_user, token=token)
    token.refresh_from_db()
    assert token.revoked_at is not None
    events = AuditEvent.objects.filter(action=AuditAction.API_TOKEN_REVOKED)
    assert [e.actor for e in events] == [world.vendor_user]


# --- the API authentication -----------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "bearer"])
def test_a_created_token_authenticates_api_requests_as_its_owner(world, scheme):
    _, secret = api_token_create(actor=world.vendor_user, name="script")
    response = api(secret, scheme)
    assert response.status_code == 200
    # Without it the API refuses.
    assert Client().get(PACKAGES).status_code in (401, 403)


def test_a_revoked_token_is_refused_with_a_clear_message(world):
    token, secret = api_token_create(actor=world.vendor_user, name="script")
    api_token_revoke(actor=world.vendor_user, token=token)
    response = api(secret)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]


def test_an_expired_token_is_refused_with_a_clear_message(world):
    token, secret = api_token_create(actor=world.vendor_user, name="script")
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api(secret)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_an_unknown_named_token_is_refused(world):
    assert api("bs_not-a-token-at-all").status_code == 401
    assert api("bs_not-a-token-at-all", "Bearer").status_code == 401


def test_a_plaintext_drf_style_token_is_refused(world):
    # DRF's authtoken (stored in plain text) is gone: a 40-hex key authenticates nothing.
    assert api("0" * 40).status_code == 401
    assert api("0" * 40, "Bearer").status_code == 401


def test_last_use_is_noted_at_most_once_a_minute(world):
    token, secret = api_token_create(actor=world.vendor_user, name="script")
    assert token.last_used_at is None
    api(secret)
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    api(secret)
    token.refresh_from_db()
    assert token.last_used_at == first  # within the minute: no write
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    api(secret)
    token.refresh_from_db()
    assert token.last_used_at > first - timedelta(minutes=2)


# --- the page ------------------------------------------------------------------------------------


def test_the_page_creates_a_token_and_shows_its_secret_once(world):
    client = signed_in(world.vendor_user)
    page = client.get(reverse("web:tokens"))
    assert page.status_code == 200 and page.context["section"] == "tokens"
    assert '<label for="token-name">Name</label>' in page.content.decode()
    created = client.post(reverse("web:tokens"), {"name": "CI upload"})
    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"] or "max-age=0" in created["Cache-Control"]
    secret = created.context["secret"]
    body = created.content.decode()
    assert secret in body and "shown only this once" in body
    assert api(secret).status_code == 200
    again = client.get(reverse("web:tokens")).content.decode()
    assert secret not in again
    assert "CI upload" in again and secret[:10] in again and "active" in again


def test_a_nameless_token_is_refused_on_the_page(world):
    response = signed_in(world.vendor_user).post(reverse("web:tokens"), {"name": " "})
    assert response.status_code == 400
    assert "Give the token a name" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_page_lists_only_ones_own_tokens_with_their_state(world):
    mine, _ = api_token_create(actor=world.vendor_user, name="mine")
    gone, _ = api_token_create(actor=world.vendor_user, name="gone")
    api_token_revoke(actor=world.vendor_user, token=gone)
    theirs, _ = api_token_create(actor=world.other_vendor_user, name="theirs")
    body = signed_in(world.vendor_user).get(reverse("web:tokens")).content.decode()
    assert "mine" in body and "gone" in body and "theirs" not in body
    assert 'badge--neutral">revoked' in body and 'badge--ok">active' in body
    assert f'href="/tokens/{mine.pk}/revoke/"' in body
    assert f'href="/tokens/{gone.pk}/revoke/"' not in body


def test_revoking_asks_first_then_revokes_and_audits(world):
    token, secret = api_token_create(actor=world.vendor_user, name="script")
    client = signed_in(world.vendor_user)
    confirm = client.get(reverse("web:token-revoke", args=[token.pk]))
    assert confirm.status_code == 200 and "Revoke the token" in confirm.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is None  # asking is not revoking
    done = client.post(reverse("web:token-revoke", args=[token.pk]))
    assert done.status_code == 303 and done["Location"] == reverse("web:tokens")
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action=AuditAction.API_TOKEN_REVOKED).count() == 1
    assert api(secret).status_code == 401


def test_another_persons_token_answers_404_like_a_missing_one(world):
    token, _ = api_token_create(actor=world.vendor_user, name="script")
    client = signed_in(world.other_vendor_user)
    assert client.get(reverse("web:token-revoke", args=[token.pk])).status_code == 404
    assert client.post(reverse("web:token-revoke", args=[token.pk])).status_code == 404
    assert client.get(reverse("web:token-revoke", args=[99999])).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
