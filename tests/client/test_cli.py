"""The `blindspot` command against a live server: login (and a wrong password, a locked
account), submit to submitted and to refused, review and start as the team, watch, results,
report sign, download and verify (issued and altered)."""

import json
import stat

import pytest

from reports.models import Report
from tests.factories import PASSWORD, protocol_document
from tests.run_helpers import run_setup
from tests.support.packages import repacked
from validation.models import ApiToken, ModelPackage, ValidationRun
from validation.services.tokens import api_token_create


def token_of(user) -> str:
    return api_token_create(actor=user, name="test")[1]


def test_login_stores_a_private_token_that_later_commands_use(cli, world):
    done = cli("login", "--username", "vendor_a_user", "--password-stdin", input=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    stored = cli.config / "credentials.json"
    assert str(stored) in done.stdout
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    secret = json.loads(stored.read_text())["token"]
    assert ApiToken.objects.get(user=world.vendor_user).name == "blindspot CLI"
    assert secret.startswith("bs_")
    listed = cli("packages", "list")  # no --token: the stored one
    assert listed.returncode == 0, listed.stderr


def test_a_wrong_password_and_a_locked_account_are_refused_clearly(cli, world, settings):
    wrong = cli("login", "--username", "vendor_a_user", "--password-stdin", input="nope\n")
    assert wrong.returncode == 2
    assert "Those credentials are not right." in wrong.stderr
    assert not (cli.config / "credentials.json").exists()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        cli("login", "--username", "vendor_a_user", "--password-stdin", input="nope\n")
    locked = cli("login", "--username", "vendor_a_user", "--password-stdin", input=PASSWORD + "\n")
    assert locked.returncode == 1
    assert "locked" in locked.stderr and "HTTP 429" in locked.stderr
    assert not ApiToken.objects.exists()


def test_commands_without_a_token_say_how_to_get_one(cli, world):
    done = cli("packages", "list")
    assert done.returncode == 2 and "blindspot login" in done.stderr
    bad = cli("packages", "list", token="bs_not-a-token")
    assert bad.returncode == 1 and "Unknown API token" in bad.stderr


@pytest.mark.sandbox
def test_submit_follows_the_smoke_test_to_submitted_then_the_team_approves(
    cli, world, package_file, celery_worker_thread
):
    done = cli("submit", str(package_file), "-q", token=token_of(world.vendor_user))
    assert done.returncode == 0, done.stderr
    package = ModelPackage.objects.get()
    assert done.stdout.strip() == str(package.pk)
    assert package.status == ModelPackage.Status.SUBMITTED
    assert "uploaded" in done.stderr and "100.0%" in done.stderr  # the upload's progress bar
    reviewed = cli("packages", "review", str(package.pk), "approve", token=token_of(world.reviewer))
    assert reviewed.returncode == 0, reviewed.stderr
    assert "approved" in reviewed.stdout
    package.refresh_from_db()
    assert package.status == ModelPackage.Status.APPROVED


@pytest.mark.sandbox
def test_submit_prints_the_refusal_category_and_reasons(
    cli, world, package_file, tmp_path, celery_worker_thread
):
    broken = repacked(
        package_file, tmp_path / "changed.tar", name="Broken", output__positive_index=1
    )
    done = cli("submit", str(broken), token=token_of(world.vendor_user))
    assert done.returncode == 1
    assert "refused (bad-output)" in done.stderr
    assert "positive_index" in done.stderr


def test_an_upload_intake_refuses_lists_its_problems(cli, world, package_file, tmp_path):
    broken = repacked(package_file, tmp_path / "changed.tar", threshold=7, task="segmentation")
    done = cli("submit", str(broken), token=token_of(world.vendor_user))
    assert done.returncode == 2, done.stderr
    assert "threshold" in done.stderr and "task" in done.stderr
    assert not ModelPackage.objects.exists()


@pytest.mark.sandbox
def test_a_run_started_watched_signed_downloaded_and_verified(
    cli, world, package_file, cohort, celery_worker_thread, tmp_path
):
    package, version, protocol = run_setup(
        world, package_path=package_file, manifest=cohort, protocol=protocol_document()
    )
    team, vendor = token_of(world.reviewer), token_of(world.vendor_user)
    started = cli(
        "runs", "start", "--package", str(package.pk), "--dataset-version", str(version.pk),
        "--protocol", str(protocol.pk), "-q", token=team,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    run = ValidationRun.objects.get()
    assert started.stdout.strip() == str(run.pk)

    watched = cli("watch", str(run.pk), "--interval", "0.5", token=vendor)
    assert watched.returncode == 0, watched.stderr
    assert f"run {run.pk}: awaiting-signature" in watched.stdout
    assert "cases" in watched.stderr and "[running]" in watched.stderr

    results = cli("results", str(run.pk), token=vendor)
    assert results.returncode == 0, results.stderr
    assert "auc" in results.stdout and "95% lower" in results.stdout
    assert "PASS  Lower 95% bound of AUC >= 0.5 (observed" in results.stdout or (
        "FAIL  Lower 95% bound of AUC >= 0.5 (observed" in results.stdout
    )
    assert "verdict: " in results.stdout
    as_json = json.loads(cli("results", str(run.pk), "--json", token=vendor).stdout)
    assert "primary" in as_json and "subgroups" in as_json

    report = Report.objects.get(run=run)
    listed = cli("report", "list", "--run", str(run.pk), "-q", token=team)
    assert listed.stdout.split() == [str(report.pk)]
    for user, meaning in ((world.reviewer, "reviewed"), (world.qa, "approved")):
        signed = cli(
            "report", "sign", str(report.pk), "--meaning", meaning, "--password-stdin",
            token=token_of(user), input=PASSWORD + "\n",
        )  # fmt: skip
        assert signed.returncode == 0, signed.stderr
    assert "issued" in signed.stdout
    # The vendor sees its report once issued.
    listed = cli("report", "list", "--run", str(run.pk), "-q", token=vendor)
    assert listed.stdout.split() == [str(report.pk)]

    pdf = tmp_path / "report.pdf"
    downloaded = cli("report", "download", str(report.pk), "-o", str(pdf), token=vendor)
    assert downloaded.returncode == 0, downloaded.stderr
    assert pdf.read_bytes()[:5] == b"%PDF-"
    verified = cli("report", "verify", str(pdf), token=vendor)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "the issued, current version" in verified.stdout
    assert "signature of document" in verified.stdout and "verifies" in verified.stdout

    altered = tmp_path / "altered.pdf"
    altered.write_bytes(pdf.read_bytes().replace(b"%%EOF", b"%%EOF\n% edited", 1))
    checked = cli("report", "verify", str(altered), token=vendor)
    assert checked.returncode == 1
    assert "ALTERED" in checked.stdout
