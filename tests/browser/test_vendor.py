"""The vendor portal in a real browser: upload with progress and the smoke test arriving live,
a bad package's problems, and a run followed live to issued, with its results and figures.
Smoke tests and runs execute on a real Celery worker thread, never in the web request."""

import re
import time

import pytest
from playwright.sync_api import expect

from reports.models import Report
from reports.services import report_sign
from tests.factories import PASSWORD
from tests.run_helpers import run_setup
from tests.support.browser import look, sign_in
from tests.support.packages import repacked
from validation.models import ModelPackage, ValidationRun
from validation.services.runs import run_start


@pytest.mark.sandbox
def test_a_vendor_uploads_a_package_and_watches_its_smoke_test_pass_live(
    web, live_server, world, package_file, celery_worker_thread
):
    sign_in(web, live_server.url, "vendor_a_user", PASSWORD)
    web.goto(live_server.url + "/packages/")
    expect(web.get_by_role("heading", level=1)).to_have_text("Packages")
    look(web, "vendor-packages-empty")
    web.get_by_role("link", name="Upload a package").first.click()
    expect(web.get_by_role("heading", level=1)).to_have_text("Upload a package")
    look(web, "vendor-package-upload")
    web.get_by_label("Package archive").set_input_files(str(package_file))
    web.get_by_role("button", name="Upload and test").click()
    expect(web).to_have_url(re.compile(r"/packages/\d+/$"))
    expect(web.get_by_role("heading", level=1)).to_have_text("Finder 1.0")
    package = ModelPackage.objects.get()
    # The page came up before the worker decided (or just as it did); it follows without reload.
    web.evaluate("window.__notReloaded = true")
    expect(web.locator("#package-status [data-status]")).to_have_attribute(
        "data-status", "submitted", timeout=60_000
    )
    assert web.evaluate("window.__notReloaded") is True
    expect(web.locator("#package-status")).not_to_have_attribute("hx-get", re.compile("."))
    expect(web.get_by_text("Smoke test: load")).to_be_visible()
    look(web, "vendor-package-detail")
    package.refresh_from_db()
    assert package.status == ModelPackage.Status.SUBMITTED and package.smoke_load_seconds
    web.goto(live_server.url + "/packages/")
    expect(web.get_by_role("cell", name="Awaiting review")).to_be_visible()
    look(web, "vendor-packages")


def test_a_bad_package_shows_its_problems_one_per_line_and_nothing_is_stored(
    web, live_server, world, package_file, tmp_path
):
    sign_in(web, live_server.url, "vendor_a_user", PASSWORD)
    web.goto(live_server.url + "/packages/upload/")
    # The real package with a manifest that breaks three of the schema's rules.
    broken = repacked(
        package_file, tmp_path / "broken.tar", drop=("input",), threshold=7, task="segmentation"
    )
    web.get_by_label("Package archive").set_input_files(str(broken))
    web.get_by_role("button", name="Upload and test").click()
    alert = web.get_by_role("alert").filter(has_text="Package rejected")
    expect(alert).to_contain_text("the manifest is invalid")
    assert alert.locator("li").count() >= 3
    look(web, "vendor-package-upload-refused")
    # Not an archive at all: one plain reason. (A fresh page: axe leaves empty style attributes
    # behind, which htmx's settling would copy with setAttribute, a CSP violation.)
    web.reload()
    junk = tmp_path / "notes.txt"
    junk.write_text("not a package")
    web.get_by_label("Package archive").set_input_files(str(junk))
    web.get_by_role("button", name="Upload and test").click()
    expect(web.get_by_role("alert").filter(has_text="Package rejected")).not_to_contain_text(
        "manifest is invalid"
    )
    assert not ModelPackage.objects.exists()


@pytest.mark.sandbox
def test_a_run_progresses_live_to_issued_then_its_results_and_figures_show(
    web, live_server, world, package_file, cohort, celery_worker_thread
):
    from tests.factories import protocol_document

    package, version, protocol = run_setup(
        world,
        package_path=package_file,
        manifest=cohort,
        protocol=protocol_document(min_cell_size=3),
    )
    sign_in(web, live_server.url, "vendor_a_user", PASSWORD)
    run = run_start(
        actor=world.reviewer, package=package, dataset_version=version, protocol=protocol
    )
    web.goto(f"{live_server.url}/runs/{run.pk}/")
    expect(web.get_by_role("heading", level=1)).to_contain_text(f"Run {run.pk}")
    look(web, "vendor-run-detail-live")
    status = web.locator("#run-progress [data-status]")
    expect(status).to_have_attribute("data-status", "awaiting-signature", timeout=120_000)
    expect(web.locator(".stepper li.current")).to_have_text(re.compile("Awaiting signature"))
    look(web, "vendor-run-awaiting-signature")

    report = Report.objects.get(run=run)
    report_sign(actor=world.reviewer, report=report, password=PASSWORD, meaning="reviewed")
    report_sign(actor=world.qa, report=report, password=PASSWORD, meaning="approved")
    polls: list[str] = []
    web.on("request", lambda r: polls.extend([r.url] if "/progress/" in r.url else []))
    expect(status).to_have_attribute("data-status", "issued", timeout=60_000)
    expect(web.locator(".stepper li.done")).to_have_count(7)
    run.refresh_from_db()
    assert run.status == ValidationRun.Status.ISSUED
    seen = len(polls)
    time.sleep(5)
    assert len(polls) == seen, "the page kept polling after the run was issued"
    look(web, "vendor-run-issued")

    web.get_by_role("link", name="See the results").click()
    expect(web.get_by_role("heading", level=1)).to_have_text(f"Results of run {run.pk}")
    expect(web.get_by_role("heading", name=re.compile("Acceptance criteria"))).to_be_visible()
    images = web.locator("figure img")
    assert images.count() >= 1
    for i in range(images.count()):
        image = images.nth(i)
        expect(image).to_be_visible()
        web.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )
    look(web, "vendor-run-results")
    web.set_viewport_size({"width": 1920, "height": 1080})
    look(web, "vendor-run-results-1920")
    web.goto(live_server.url + "/runs/")
    expect(web.get_by_role("cell", name="Issued")).to_be_visible()
    look(web, "vendor-runs")
