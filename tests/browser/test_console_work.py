"""The review console's work screens in a real browser: a reviewer finds a submitted package in
the queue, approves it, launches a run after reading its pre-flight checks, and watches the
monitor until the report awaits its signature (the run executes on a real Celery worker
thread); an auditor sees the queue and the package without any action."""

import re

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD, approved_package, protocol_document
from tests.support.browser import look, sign_in
from tests.web.vendor_helpers import package_of
from validation.models import ModelPackage
from validation.services.datasets import dataset_create, dataset_grant, dataset_version_import
from validation.services.protocols import protocol_create, protocol_lock


@pytest.mark.sandbox
def test_a_reviewer_approves_a_package_launches_a_run_and_watches_it(
    web, live_server, world, package_file, cohort, celery_worker_thread
):
    package = approved_package(world, package_file)
    manifest = {**package.manifest, "training_data": {"sites": ["Nowhere"], "scanners": []}}
    # As the smoke test leaves a package that passed it: submitted, awaiting review.
    ModelPackage.objects.filter(pk=package.pk).update(
        status=ModelPackage.Status.SUBMITTED,
        reviewed_by=None,
        reviewed_at=None,
        review_note="",
        manifest=manifest,
        smoke_load_seconds=0.41,
        smoke_batch_seconds=0.07,
    )
    dataset = dataset_create(actor=world.steward, partner=world.partner_a, name="Chest")
    version = dataset_version_import(actor=world.steward, dataset=dataset, source=cohort)
    dataset_grant(actor=world.steward, dataset_version=version, vendor=world.vendor_a, max_runs=3)
    protocol = protocol_create(
        actor=world.reviewer, name="Chest triage", document=protocol_document(min_cell_size=3)
    )
    protocol_lock(actor=world.reviewer, protocol=protocol)

    sign_in(web, live_server.url, "reviewer", PASSWORD)
    web.goto(f"{live_server.url}/console/")
    expect(web.get_by_role("heading", level=1)).to_have_text("Work queue")
    expect(web.locator('[data-count="packages"]')).to_have_text("1")
    look(web, "console-work-queue")

    web.get_by_role("link", name=f"{package.name} {package.version}").click()
    expect(web.get_by_role("heading", level=1)).to_have_text(f"{package.name} {package.version}")
    expect(web.get_by_role("row", name=re.compile("Loads in the sandbox"))).to_contain_text(
        "Passed"
    )
    look(web, "console-work-package")
    web.get_by_role("button", name="Approve for validation").click()
    expect(web.locator("#package-review")).to_contain_text("Approved")
    expect(web.get_by_role("button", name="Approve for validation")).to_have_count(0)

    web.goto(f"{live_server.url}/console/packages/")
    expect(web.get_by_role("cell", name="Approved")).to_be_visible()
    look(web, "console-work-packages")

    web.goto(f"{live_server.url}/console/runs/new/")
    expect(web.get_by_role("heading", level=1)).to_have_text("Launch a run")
    look(web, "console-work-launcher-empty")
    web.get_by_label("Package (approved)").select_option(str(package.pk))
    web.get_by_label("Dataset version (sealed)").select_option(str(version.pk))
    web.get_by_label("Protocol (locked)").select_option(str(protocol.pk))
    checks = web.locator("#preflight")
    expect(checks.locator("[data-check]")).to_have_count(5)
    expect(checks.locator('[data-check="caps"]')).to_contain_text("Runs used: 0 of 3")
    expect(checks.locator('[data-check="training"]')).to_contain_text("None of the 16 cases")
    expect(checks).to_contain_text("Every blocking check passes.")
    look(web, "console-work-launcher-preflight")
    web.get_by_role("button", name="Start the run").click()
    expect(web.get_by_role("alert")).to_contain_text("Tick the confirmation")
    look(web, "console-work-launcher-unconfirmed")
    web.get_by_label(re.compile("I have checked")).check()
    web.get_by_role("button", name="Start the run").click()

    expect(web).to_have_url(re.compile(r"/console/runs/\d+/$"))
    expect(web.get_by_role("heading", level=1)).to_contain_text(f"{package.name}")
    look(web, "console-work-run-live")
    status = web.locator("#run-live [data-status]")
    expect(status).to_have_attribute("data-status", "awaiting-signature", timeout=120_000)
    # Awaiting a signature is not final (it goes on to issued): the monitor stays live.
    expect(web.locator("#run-live")).to_have_attribute("hx-get", re.compile("/live/$"))
    expect(web.locator(".shards tbody tr").first).to_contain_text("Done")
    expect(web.get_by_role("link", name="Open the results")).to_be_visible()
    expect(web.get_by_role("button", name="Cancel the run")).to_have_count(0)
    look(web, "console-work-run")

    web.goto(f"{live_server.url}/console/runs/")
    expect(web.get_by_role("cell", name="Awaiting signature")).to_be_visible()
    look(web, "console-work-runs")
    web.goto(f"{live_server.url}/console/")
    expect(web.locator('[data-count="reports"]')).to_have_text("1")
    expect(web.get_by_text("Needs review (a reviewer)")).to_be_visible()
    web.set_viewport_size({"width": 1920, "height": 1080})
    look(web, "console-work-queue-1920")


def test_an_auditor_sees_the_queue_and_the_package_without_actions(web, live_server, world):
    package = package_of(world.vendor_a, world.vendor_user, status=ModelPackage.Status.SUBMITTED)
    sign_in(web, live_server.url, "auditor", PASSWORD)
    web.goto(f"{live_server.url}/console/")
    expect(web.locator('[data-count="packages"]')).to_have_text("1")
    look(web, "console-work-queue-auditor")
    web.get_by_role("link", name=f"{package.name} {package.version}").click()
    expect(web.get_by_role("heading", level=1)).to_have_text(f"{package.name} {package.version}")
    expect(web.locator("#package-review")).to_contain_text("Auditors read the record")
    expect(web.get_by_role("button")).to_have_text(["Sign out"])
    look(web, "console-work-package-auditor")
    web.goto(f"{live_server.url}/console/runs/new/")
    expect(web.get_by_role("button", name="Start the run")).to_have_count(0)
    look(web, "console-work-launcher-auditor")
