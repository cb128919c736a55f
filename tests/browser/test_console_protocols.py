"""The protocol editor in a real browser: a reviewer writes a protocol with an unknown metric,
sees the problem at its path while typing, fixes it, saves; writes a second version and sees
its diff against the first; locks it with the confirmation (the hash shown) and finds the page
read-only after. An auditor reads the same pages with no action on them."""

import json
import re

from playwright.sync_api import expect

from audit.models import AuditAction, AuditEvent
from tests.factories import PASSWORD, protocol_document
from tests.support.browser import look, sign_in
from validation.models import Protocol


def test_a_reviewer_writes_fixes_versions_and_locks_a_protocol(web, live_server, world):
    sign_in(web, live_server.url, "reviewer", PASSWORD)
    web.goto(f"{live_server.url}/console/protocols/")
    expect(web.get_by_role("heading", level=1)).to_have_text("Protocols")
    look(web, "console-protocols-empty")

    web.get_by_role("link", name="New protocol").click()
    expect(web.get_by_role("heading", level=1)).to_have_text("New protocol")
    check = web.locator("#protocol-check")
    expect(check).to_contain_text("Valid")
    web.get_by_label("Name", exact=True).fill("Chest screening")
    expect(check).to_contain_text("Saves as Chest screening v1")

    # An unknown metric: the problem appears at its path while typing, before any save.
    draft = protocol_document()
    draft["acceptance_criteria"][0]["metric"] = "youden"
    editor = web.get_by_label("Protocol document (JSON)")
    editor.fill(json.dumps(draft, indent=2))
    expect(check).to_contain_text("1 problem")
    expect(check.locator("code")).to_have_text("acceptance_criteria/0/metric")
    expect(check).to_contain_text("'youden' is not one of")
    look(web, "console-protocol-new-problem")

    # A syntax error is named by line and column.
    editor.fill('{\n  "schema_version": "1.0",\n  "task"\n}')
    expect(check).to_contain_text("line 4, column 1")
    look(web, "console-protocol-new-syntax")

    # Saving anyway is refused with the same problem listed; then fixed and saved.
    editor.fill(json.dumps(draft, indent=2))
    expect(check).to_contain_text("1 problem")
    web.get_by_role("button", name="Save the protocol").click()
    expect(web.get_by_role("alert")).to_contain_text("acceptance_criteria/0/metric")
    assert not Protocol.objects.exists()
    editor = web.get_by_label("Protocol document (JSON)")
    editor.fill(json.dumps(protocol_document(), indent=2))
    expect(check).to_contain_text("Valid")
    web.get_by_role("button", name="Save the protocol").click()
    expect(web.get_by_role("heading", level=1)).to_contain_text("Chest screening v1")
    expect(web.get_by_role("heading", level=1)).to_contain_text("Draft")
    expect(web.locator("#protocol-diff")).to_contain_text("first version")
    look(web, "console-protocol-draft")

    # A second version from the first: prefilled, the diff live while typing.
    web.get_by_role("link", name="Write a new version").click()
    expect(web.get_by_role("heading", level=1)).to_have_text("New version of Chest screening")
    editor = web.get_by_label("Protocol document (JSON)")
    first = Protocol.objects.get()
    assert json.loads(editor.input_value()) == first.document
    expect(web.locator("#protocol-diff")).to_contain_text("No change")
    changed = {**first.document, "min_cell_size": 5, "multiplicity": "bh"}
    editor.fill(json.dumps(changed, indent=2))
    diff = web.locator("#protocol-diff")
    expect(diff).to_contain_text("2 lines added")
    expect(check).to_contain_text("Saves as Chest screening v2")
    look(web, "console-protocol-new-version")
    web.get_by_role("button", name="Save the new version").click()
    expect(web.get_by_role("heading", level=1)).to_contain_text("Chest screening v2")
    expect(diff).to_contain_text("Changes against Chest screening v1")
    expect(diff.locator("tr.diff__row--added")).to_have_count(2)
    expect(diff.locator("tr.diff__row--removed")).to_have_count(2)
    expect(diff.locator("tr.diff__row--added").first).to_contain_text("added")
    look(web, "console-protocol-diff")

    # Lock: not without the confirmation, then locked with it; read-only after.
    confirm = web.get_by_label(re.compile("I confirm: lock this version"))
    expect(confirm).to_have_attribute("required", "")  # the browser asks for it first
    web.get_by_role("button", name="Lock protocol").click()
    assert not Protocol.objects.get(version=2).is_locked
    confirm.check()
    web.get_by_role("button", name="Lock protocol").click()
    expect(web.get_by_role("heading", level=1)).to_contain_text("Locked")
    second = Protocol.objects.get(version=2)
    assert second.is_locked
    expect(web.locator("[data-sha256]")).to_have_text(second.sha256)
    expect(web.locator("#protocol-lock")).to_contain_text("Read-only")
    expect(web.get_by_role("button", name="Lock protocol")).to_have_count(0)
    expect(web.get_by_role("link", name="Write a new version")).to_be_visible()
    look(web, "console-protocol-locked")
    web.set_viewport_size({"width": 1920, "height": 1080})
    look(web, "console-protocol-locked-1920")
    web.set_viewport_size({"width": 1280, "height": 900})

    web.get_by_role("link", name="Protocols").first.click()
    expect(web.locator("table.rows tbody tr")).to_have_count(2)
    look(web, "console-protocols")
    assert AuditEvent.objects.filter(action=AuditAction.PROTOCOL_CREATED).count() == 2
    assert AuditEvent.objects.filter(action=AuditAction.PROTOCOL_LOCKED).count() == 1


def test_an_auditor_reads_the_protocols_with_no_action(web, live_server, world):
    protocol = Protocol.objects.create(
        name="Chest screening", version=1, document=protocol_document(), created_by=world.reviewer
    )
    sign_in(web, live_server.url, "auditor", PASSWORD)
    web.goto(f"{live_server.url}/console/protocols/")
    expect(web.get_by_role("link", name="New protocol")).to_have_count(0)
    web.get_by_role("link", name="Chest screening v1").click()
    expect(web.get_by_role("heading", level=1)).to_contain_text("Chest screening v1")
    expect(web.get_by_role("button", name="Lock protocol")).to_have_count(0)
    expect(web.get_by_role("link", name="Write a new version")).to_have_count(0)
    look(web, "console-protocol-auditor")
    assert Protocol.objects.get(pk=protocol.pk).locked_at is None
