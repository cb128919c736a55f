"""Signing and the audit trail in a real browser: a reviewer reads the draft as page images,
is refused with a wrong password, signs; the same person (who also holds the QA role) is told
a different person must approve; a QA approver signs and the report becomes issued live on a
worker; an auditor filters the trail and sees the chain verified, then a row edited behind
the service's back shows the broken link."""

import re

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from audit.models import AuditAction, AuditEvent
from reports.models import Report
from tests.factories import PASSWORD
from tests.support.audit_tamper import tamper_payload
from tests.support.browser import look, sign_in
from tests.web.console_sign_helpers import drafted_real_report
from validation.models import Membership, Role


@pytest.fixture(autouse=True)
def _private_var(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    cache.clear()


def sign_out(web) -> None:
    web.get_by_role("button", name="Sign out").click()
    web.wait_for_load_state()


def test_review_then_approval_issues_the_report_live(web, live_server, world, celery_worker_thread):
    report = drafted_real_report(world)
    Membership.objects.create(
        user=world.reviewer, organisation=world.validator, role=Role.QA_APPROVER
    )
    page_url = f"{live_server.url}/console/reports/{report.pk}/sign/"

    sign_in(web, live_server.url, "reviewer", PASSWORD)
    web.goto(page_url)
    expect(web.get_by_role("heading", level=1)).to_have_text(f"Sign {report.reference} version 1")
    first_page = web.get_by_role("img", name=re.compile(f"^Page 1 of \\d+ of {report.reference}"))
    # A reports worker (the worker thread) renders the draft's pages; the panel shows them live.
    expect(first_page).to_be_visible(timeout=30_000)
    first_page.scroll_into_view_if_needed()
    web.wait_for_function(
        "() => { const i = document.querySelector('.report-pages img');"
        " return i && i.complete && i.naturalWidth > 700; }"
    )
    expect(web.get_by_text("Next: the reviewed signature, by a reviewer.")).to_be_visible()
    look(web, "console-sign-review")
    web.reload()  # a fresh page for htmx (axe leaves style attributes behind)

    web.get_by_label("Your password").fill("not my password")
    web.get_by_role("button", name="Sign as reviewed").click()
    expect(web.get_by_role("alert")).to_contain_text("The password is not correct")
    assert not report.signatures.exists()
    look(web, "console-sign-wrong-password")
    web.reload()

    web.get_by_label("Your password").fill(PASSWORD)
    web.get_by_role("button", name="Sign as reviewed").click()
    expect(web.get_by_text("Signed: reviewed.")).to_be_visible()
    status = web.locator("#sign-status")
    expect(status.get_by_role("rowheader", name=re.compile("Rita Reviewer"))).to_be_visible()
    expect(web.get_by_text(re.compile("must come from a different person"))).to_be_visible()
    expect(web.get_by_role("button", name="Sign as approved")).to_have_count(0)
    look(web, "console-sign-same-person")
    sign_out(web)

    sign_in(web, live_server.url, "qa", PASSWORD)
    web.goto(page_url)
    expect(web.get_by_text("Next: the approved signature, by a QA approver.")).to_be_visible()
    look(web, "console-sign-approval")
    web.reload()
    web.get_by_label("Your password").fill(PASSWORD)
    web.get_by_role("button", name="Sign as approved").click()
    expect(web.locator("#sign-status [data-status]")).to_have_attribute(
        "data-status", "issued", timeout=90_000
    )
    expect(status).not_to_have_attribute("hx-get", re.compile("."))
    expect(status.get_by_role("rowheader", name=re.compile("Quinn Approver"))).to_be_visible()
    report.refresh_from_db()
    assert report.status == Report.Status.ISSUED
    look(web, "console-sign-issued")
    web.set_viewport_size({"width": 1920, "height": 1080})
    look(web, "console-sign-issued-1920")
    web.set_viewport_size({"width": 1280, "height": 900})
    sign_out(web)

    sign_in(web, live_server.url, "auditor", PASSWORD)
    web.goto(f"{live_server.url}/console/audit/")
    expect(web.get_by_role("heading", level=1)).to_have_text("Audit trail")
    chain = web.get_by_role("region", name="Chain verification")
    expect(chain).to_contain_text("The chain is intact")
    look(web, "console-audit")
    web.get_by_label("Action").select_option(AuditAction.REPORT_SIGNED.value)
    web.get_by_role("button", name="Filter").click()
    rows = web.locator("table.audit-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("Quinn Approver <qa>")
    expect(rows.nth(1)).to_contain_text("Rita Reviewer <reviewer>")
    rows.first.get_by_text("2 fields").click()
    expect(rows.first.locator("pre")).to_contain_text('"meaning": "approved"')
    look(web, "console-audit-filtered")

    signed = AuditEvent.objects.filter(action=AuditAction.REPORT_SIGNED).order_by("id")[0]
    tamper_payload(signed.pk, '{"meaning": "approved", "content_sha256": "0"}')
    web.get_by_role("link", name="Verify now").click()
    expect(chain).to_contain_text(f"The chain is broken at event #{signed.pk}")
    expect(chain).to_contain_text("payload does not match payload_sha256")
    expect(web.locator("tr.audit-broken")).to_contain_text("broken link")
    look(web, "console-audit-broken")
