"""POST /api/v1/auth/token/: a named, hashed, expiring token for a username and password; wrong
credentials one 400 whatever was wrong; audited (created, failed); django-axes' lockout and the
organisation's second factor respected; throttled per client address."""

import hashlib
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, AuditEvent
from tests.factories import PASSWORD
from validation.models import ApiToken

pytestmark = pytest.mark.django_db

URL = "/api/v1/auth/token/"


@pytest.fixture(autouse=True)
def _fresh_throttle_and_lockouts(settings):
    settings.API_TOKEN_RATE = "1000/min"
    cache.clear()  # the throttle's history; axes keeps its attempts in the database
    yield
    cache.clear()


def obtain(**body):
    return Client().post(URL, body, content_type="application/json")


def events(action, user):
    return AuditEvent.objects.filter(action=action, actor=user)


def test_right_credentials_get_a_named_hashed_expiring_token_that_authenticates(world, settings):
    settings.API_TOKEN_TTL_DAYS = 30
    response = obtain(username="vendor_a_user", password=PASSWORD, name="laptop")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"token", "name", "prefix", "expires_at"}
    assert body["token"].startswith("bs_") and body["name"] == "laptop"
    assert body["token"].startswith(body["prefix"])
    token = ApiToken.objects.get(user=world.vendor_user)
    assert token.key_sha256 == hashlib.sha256(body["token"].encode()).hexdigest()
    assert body["token"] not in str(ApiToken.objects.values_list().get(pk=token.pk))
    assert token.expires_at is not None
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    created = events(AuditAction.API_TOKEN_CREATED, world.vendor_user).get()
    assert body["token"] not in str(created.payload) and created.payload["name"] == "laptop"
    me = Client().get("/api/v1/packages/", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200


def test_the_name_defaults_and_no_expiry_when_the_setting_is_zero(world, settings):
    settings.API_TOKEN_TTL_DAYS = 0
    body = obtain(username="vendor_a_user", password=PASSWORD).json()
    assert body["name"] == "blindspot CLI" and body["expires_at"] is None


@pytest.mark.parametrize(
    "username,password", [("vendor_a_user", "wrong"), ("nobody-here", PASSWORD)]
)
def test_wrong_credentials_are_one_400_that_does_not_say_which_part(world, username, password):
    response = obtain(username=username, password=password)
    assert response.status_code == 400
    assert response.json()["detail"] == "Those credentials are not right."
    assert not ApiToken.objects.exists()


def test_a_wrong_password_is_recorded_as_a_failed_sign_in(world):
    obtain(username="vendor_a_user", password="wrong")
    assert events(AuditAction.ACCOUNT_SIGN_IN_FAILED, world.vendor_user).count() == 1


def test_missing_fields_are_a_400_naming_them(world):
    response = obtain(name="x")
    assert response.status_code == 400
    text = response.content.decode()
    assert "username" in text and "password" in text


def test_an_inactive_account_gets_no_token(world):
    world.vendor_user.is_active = False
    world.vendor_user.save(update_fields=["is_active"])
    assert obtain(username="vendor_a_user", password=PASSWORD).status_code == 400


def test_a_locked_account_cannot_mint_tokens_even_with_the_right_password(world, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        obtain(username="vendor_a_user", password="wrong")
    response = obtain(username="vendor_a_user", password=PASSWORD)
    assert response.status_code == 429
    assert response["Content-Type"].split(";")[0].endswith("json")  # not the web sign-in page
    assert "locked" in response.json()["detail"]
    assert not ApiToken.objects.exists()
    assert events(AuditAction.ACCOUNT_LOCKED_OUT, world.vendor_user).exists()
    # Another account is not locked by this one's failures.
    assert obtain(username="vendor_b_user", password=PASSWORD).status_code == 201


def _confirmed_device(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, digits=device.digits):06d}"


def test_an_organisation_requiring_a_second_factor_needs_a_current_code(world):
    world.vendor_a.require_second_factor = True
    world.vendor_a.save(update_fields=["require_second_factor"])
    no_device = obtain(username="vendor_a_user", password=PASSWORD)
    assert no_device.status_code == 400 and "set up an authenticator" in no_device.json()["detail"]

    device = _confirmed_device(world.vendor_user)
    missing = obtain(username="vendor_a_user", password=PASSWORD)
    assert missing.status_code == 400 and "otp" in missing.json()["detail"]
    wrong = obtain(username="vendor_a_user", password=PASSWORD, otp="000000")
    if _code(device) != "000000":
        assert wrong.status_code == 400 and "not right" in wrong.json()["detail"]
        failed = events(AuditAction.ACCOUNT_SIGN_IN_FAILED, world.vendor_user).get()
        assert failed.payload["second_factor"] is True
    assert not ApiToken.objects.exists()

    device.refresh_from_db()
    device.throttle_reset()  # django-otp slows retries after a wrong code (a second or more)
    right = obtain(username="vendor_a_user", password=PASSWORD, otp=_code(device))
    assert right.status_code == 201, right.content
    # A member of an organisation that does not require it gives no code.
    assert obtain(username="vendor_b_user", password=PASSWORD).status_code == 201


def test_a_user_who_set_up_a_second_factor_for_themself_needs_it_too(world):
    _confirmed_device(world.vendor_user)
    assert obtain(username="vendor_a_user", password=PASSWORD).status_code == 400


def test_requests_past_the_rate_are_throttled_with_429(world, settings):
    settings.API_TOKEN_RATE = "3/min"
    answers = [obtain(username="vendor_a_user", password="wrong").status_code for _ in range(4)]
    assert answers == [400, 400, 400, 429]
    assert obtain(username="vendor_a_user", password=PASSWORD).status_code == 429


def test_the_endpoint_needs_no_token_and_ignores_a_bad_one(world):
    response = Client().post(
        URL,
        {"username": "vendor_a_user", "password": PASSWORD},
        content_type="application/json",
        headers={"Authorization": "Bearer bs_expired-or-junk"},
    )
    assert response.status_code == 201
