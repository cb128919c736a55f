"""Signing in, out, and being kept out: in a real browser against the live server."""

import re
import time

from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from audit.models import AuditAction, AuditEvent
from tests.factories import PASSWORD
from tests.support.browser import look, sign_in


def test_a_vendor_signs_in_sees_their_overview_and_signs_out(web, live_server, world):
    web.goto(live_server.url + "/")
    expect(web).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    look(web, "sign-in")
    sign_in(web, live_server.url, "vendor_a_user", PASSWORD)
    expect(web.get_by_role("heading", level=1)).to_contain_text("Welcome")
    expect(web.get_by_text("Vendor member at Vendor A")).to_be_visible()
    look(web, "overview-vendor")
    web.get_by_role("button", name="Sign out").click()
    expect(web).to_have_url(re.compile(r"/accounts/login/$"))
    actions = list(
        AuditEvent.objects.filter(actor=world.vendor_user).values_list("action", flat=True)
    )
    assert actions[-2:] == [AuditAction.ACCOUNT_SIGNED_IN, AuditAction.ACCOUNT_SIGNED_OUT]


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(web, live_server, world):
    for _ in range(5):
        sign_in(web, live_server.url, "steward_a", "not-the-password")
    expect(web.get_by_role("alert")).to_contain_text("This account is locked")
    look(web, "sign-in-locked")
    sign_in(web, live_server.url, "steward_a", PASSWORD)
    expect(web.get_by_role("alert")).to_contain_text("This account is locked")
    assert "Welcome" not in web.content()
    actions = AuditEvent.objects.filter(actor=world.steward).values_list("action", flat=True)
    assert AuditAction.ACCOUNT_LOCKED_OUT in actions
    assert AuditAction.ACCOUNT_SIGNED_IN not in actions
    # Another person is not locked by it.
    sign_in(web, live_server.url, "vendor_a_user", PASSWORD)
    expect(web.get_by_role("heading", level=1)).to_contain_text("Welcome")


def test_the_session_expires_after_inactivity_and_sign_in_returns_to_the_page(
    web, live_server, world, settings
):
    settings.SESSION_IDLE_SECONDS = 2
    sign_in(web, live_server.url, "vendor_a_user", PASSWORD)
    expect(web.get_by_role("heading", level=1)).to_contain_text("Welcome")
    time.sleep(2.5)
    web.goto(live_server.url + "/accounts/password/")
    expect(web).to_have_url(re.compile(r"/accounts/login/\?next=/accounts/password/$"))
    expect(web.get_by_role("status")).to_contain_text("signed out after")
    look(web, "session-expired")
    web.get_by_label("Username").fill("vendor_a_user")
    web.get_by_label("Password").fill(PASSWORD)
    web.get_by_role("button", name="Sign in").click()
    expect(web.get_by_role("heading", level=1)).to_contain_text("Change your password")
    assert AuditEvent.objects.filter(
        actor=world.vendor_user, action=AuditAction.ACCOUNT_SESSION_EXPIRED
    ).exists()


def _code(user) -> str:
    device = TOTPDevice.objects.get(user=user)
    return f"{totp(device.bin_key, step=device.step, digits=device.digits):06d}"


def test_an_organisation_that_requires_a_second_factor_gets_one_set_up_then_asked_for(
    web, live_server, world
):
    world.vendor_a.require_second_factor = True
    world.vendor_a.save()
    sign_in(web, live_server.url, "vendor_a_user", PASSWORD)
    expect(web.get_by_role("heading", level=1)).to_have_text("Set up your second factor")
    expect(web.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    look(web, "second-factor-setup")
    web.goto(live_server.url + "/")  # nothing else opens meanwhile
    expect(web.get_by_role("heading", level=1)).to_have_text("Set up your second factor")
    web.get_by_label("Code").fill("000000" if _code(world.vendor_user) != "000000" else "111111")
    web.get_by_role("button", name="Confirm").click()
    expect(web.get_by_role("alert")).to_contain_text("not right")
    web.get_by_label("Code").fill(_code(world.vendor_user))
    web.get_by_role("button", name="Confirm").click()
    expect(web.get_by_role("heading", level=1)).to_contain_text("Welcome")
    assert TOTPDevice.objects.get(user=world.vendor_user).confirmed

    web.get_by_role("button", name="Sign out").click()
    sign_in(web, live_server.url, "vendor_a_user", PASSWORD)
    expect(web.get_by_role("heading", level=1)).to_have_text("Confirm it is you")
    look(web, "second-factor-confirm")
