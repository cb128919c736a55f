"""The web foundation without a browser: headers, sign-in rules, the record, the 404s."""

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from tests.factories import PASSWORD
from tests.support.people import signed_in

pytestmark = pytest.mark.django_db


def test_every_page_carries_a_strict_content_security_policy_and_denies_framing(world):
    response = signed_in(world.vendor_user).get("/")
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    body = response.content.decode()
    assert "<script>" not in body and " on" + "click=" not in body  # no inline script at all
    assert "https://" not in body.split("<body")[0]  # nothing from another host


def test_pages_need_a_sign_in_and_return_there_afterwards(world):
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_a_failed_sign_in_of_an_existing_account_is_recorded_and_a_strangers_is_not(world):
    client = Client()
    client.post(reverse("web:login"), {"username": "vendor_a_user", "password": "wrong"})
    client.post(reverse("web:login"), {"username": "nobody-at-all", "password": "wrong"})
    failed = AuditEvent.objects.filter(action=AuditAction.ACCOUNT_SIGN_IN_FAILED)
    assert [e.actor for e in failed] == [world.vendor_user]


def test_a_sign_in_is_recorded_with_where_it_came_from(world):
    Client(REMOTE_ADDR="10.1.2.3").post(
        reverse("web:login"), {"username": "vendor_a_user", "password": PASSWORD}
    )
    event = AuditEvent.objects.get(action=AuditAction.ACCOUNT_SIGNED_IN)
    assert event.actor == world.vendor_user and event.payload["ip"] == "10.1.2.3"


def test_the_sign_in_page_refuses_an_offsite_next(world):
    response = Client().post(
        reverse("web:login") + "?next=https://evil.example/",
        {"username": "vendor_a_user", "password": PASSWORD, "next": "https://evil.example/"},
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_a_poll_does_not_keep_an_idle_session_alive(world, settings):
    settings.SESSION_IDLE_SECONDS = 60
    client = signed_in(world.vendor_user)
    client.get("/")
    session = client.session
    session["blindspot_last_activity"] -= 61
    session.save()
    response = client.get("/", headers={"HX-Request": "true", "X-Blindspot-Poll": "1"})
    assert response.status_code == 204
    assert response["HX-Redirect"].startswith("/accounts/login/?next=")


def test_an_unverified_session_cannot_use_the_api_where_a_second_factor_is_required(world):
    world.vendor_a.require_second_factor = True
    world.vendor_a.save()
    response = signed_in(world.vendor_user).get("/api/v1/packages/")
    assert response.status_code == 403
    assert "second factor" in response.json()["detail"]


def test_a_missing_page_answers_the_house_404(world):
    response = signed_in(world.vendor_user).get("/no/such/page/")
    assert response.status_code == 404
    assert b"There is nothing here that you may see" in response.content


def test_an_operator_requires_a_second_factor_of_an_organisation_and_it_is_recorded(world):
    from django.core.management import CommandError, call_command

    call_command("require_second_factor", "Vendor A", "on")
    world.vendor_a.refresh_from_db()
    assert world.vendor_a.require_second_factor
    event = AuditEvent.objects.get(action=AuditAction.ORGANISATION_SECOND_FACTOR_REQUIRED)
    assert event.payload == {"required": True} and event.target_id == str(world.vendor_a.pk)
    response = signed_in(world.vendor_user).get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/second-f")
    with pytest.raises(CommandError, match="No organisation named 'Nobody'"):
        call_command("require_second_factor", "Nobody", "on")


def test_another_roles_page_answers_403_saying_whose_page_it_is(world):
    response = signed_in(world.steward).get("/packages/")
    assert response.status_code == 403
    body = response.content.decode()
    assert "<h1>Not allowed</h1>" in body and "This page is for vendor members." in body


def test_a_row_written_by_no_person_is_shown_as_the_systems():
    from web.templatetags.people import person

    assert person(None) == "the system"
