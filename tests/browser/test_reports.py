"""Reports, verification, dataset cards and API tokens in a real browser: a vendor reads its
issued report, downloads the PDF and verifies it (and a tampered copy); opens a dataset card;
creates an API token, sees its secret once, and revokes it."""

import re

from playwright.sync_api import expect

from audit.models import AuditAction, AuditEvent
from tests.factories import PASSWORD
from tests.support.browser import look, sign_in
from tests.web.test_reports_pages import granted_version, issued_real_report
from validation.models import ApiToken


def test_a_vendor_reads_downloads_and_verifies_its_report(web, live_server, world, tmp_path):
    report = issued_real_report(world)
    sign_in(web, live_server.url, "vendor_a_user", PASSWORD)
    web.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    expect(web.get_by_role("heading", level=1)).to_have_text("Reports")
    row = web.get_by_role("row").filter(has_text=report.reference)
    expect(row.get_by_text("issued", exact=True)).to_be_visible()
    expect(row.get_by_text("current", exact=True)).to_be_visible()
    look(web, "reports-list")

    row.get_by_role("link", name=f"{report.reference} v{report.version}").click()
    expect(web.get_by_role("heading", level=1)).to_have_text(
        f"{report.reference} version {report.version}"
    )
    expect(web.get_by_text(report.pdf_sha256)).to_be_visible()
    expect(web.get_by_role("rowheader", name="Quinn Approver")).to_be_visible()
    look(web, "reports-detail")

    with web.expect_download() as info:
        web.get_by_role("link", name="Download PDF").click()
    download = info.value
    assert download.suggested_filename == f"{report.reference}-v{report.version}.pdf"
    pdf = tmp_path / download.suggested_filename
    download.save_as(pdf)
    assert AuditEvent.objects.filter(
        action=AuditAction.REPORT_DOWNLOADED, actor=world.vendor_user
    ).exists()

    web.get_by_role("navigation", name="Main").get_by_role("link", name="Verify a PDF").click()
    expect(web.get_by_role("heading", level=1)).to_have_text("Verify a PDF")
    look(web, "reports-verify")
    # axe leaves empty style attributes behind; htmx's settle would copy them onto the swapped
    # content, which the CSP reports. A fresh page, as a person would have.
    web.reload()
    web.get_by_label("Report PDF").set_input_files(pdf)
    web.get_by_role("button", name="Verify").click()
    verdict = web.get_by_role("heading", name=re.compile("Verdict"))
    expect(verdict).to_contain_text("Genuine and current")
    expect(web.get_by_text(f"{report.reference} version {report.version}").first).to_be_visible()
    look(web, "reports-verify-genuine")
    web.reload()

    tampered = bytearray(pdf.read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    altered = tmp_path / "tampered.pdf"
    altered.write_bytes(bytes(tampered))
    web.get_by_label("Report PDF").set_input_files(altered)
    web.get_by_role("button", name="Verify").click()
    expect(verdict).to_contain_text("Not genuine: altered")
    expect(web.get_by_text(re.compile("its bytes are not that report's PDF"))).to_be_visible()
    look(web, "reports-verify-altered")
    answers = AuditEvent.objects.filter(action=AuditAction.REPORT_VERIFIED)
    assert [e.payload["status"] for e in answers] == ["issued-current", "altered"]


def test_another_vendors_report_answers_404(web, live_server, world):
    report = issued_real_report(world)
    sign_in(web, live_server.url, "vendor_b_user", PASSWORD)
    response = web.goto(f"{live_server.url}/reports/{report.pk}/")
    assert response is not None and response.status == 404
    web.goto(f"{live_server.url}/reports/")
    expect(web.get_by_text("No report you may read has been issued yet")).to_be_visible()


def test_a_vendor_opens_a_dataset_card(web, live_server, world):
    version = granted_version(world)
    sign_in(web, live_server.url, "vendor_a_user", PASSWORD)
    web.get_by_role("navigation", name="Main").get_by_role("link", name="Dataset cards").click()
    expect(web.get_by_role("heading", level=1)).to_have_text("Dataset cards")
    look(web, "cards-list")
    web.get_by_role("link", name=f"{version.dataset.name} version {version.version}").click()
    expect(web.get_by_role("heading", level=1)).to_have_text(
        f"{version.dataset.name} version {version.version}"
    )
    expect(web.get_by_role("meter", name="F")).to_have_attribute("value", "9")
    expect(web.get_by_text("fewer than 5").first).to_be_visible()
    look(web, "cards-detail")
    web.set_viewport_size({"width": 1920, "height": 1080})
    look(web, "cards-detail-1920")


def test_a_vendor_creates_a_token_sees_the_secret_once_and_revokes_it(web, live_server, world):
    sign_in(web, live_server.url, "vendor_a_user", PASSWORD)
    web.get_by_role("navigation", name="Main").get_by_role("link", name="API tokens").click()
    expect(web.get_by_role("heading", level=1)).to_have_text("API tokens")
    look(web, "tokens-list-empty")
    web.get_by_label("Name").fill("CI upload script")
    web.get_by_role("button", name="Create token").click()
    secret_box = web.get_by_label("Secret")
    expect(secret_box).to_have_value(re.compile(r"^bs_"))
    secret = secret_box.input_value()
    expect(web.get_by_role("alert")).to_contain_text("shown only this once")
    look(web, "tokens-created")

    web.goto(f"{live_server.url}/tokens/")
    assert secret not in web.content()
    row = web.get_by_role("row").filter(has_text="CI upload script")
    expect(row.get_by_text("active", exact=True)).to_be_visible()
    row.get_by_role("link", name=re.compile("Revoke")).click()
    expect(web.get_by_role("heading", level=1)).to_contain_text("Revoke the token")
    look(web, "tokens-revoke")
    web.get_by_role("button", name="Revoke token").click()
    expect(web.get_by_role("status")).to_contain_text("was revoked")
    row = web.get_by_role("row").filter(has_text="CI upload script")
    expect(row.get_by_text("revoked", exact=True)).to_be_visible()
    look(web, "tokens-list")
    assert ApiToken.objects.get(name="CI upload script").revoked_at is not None
