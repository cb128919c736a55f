"""The vendor portal's pages without a browser: packages, upload, runs, results, figures."""

import io
import json
import tarfile
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from tests.support.people import signed_in
from tests.web.vendor_helpers import package_of, run_of, scored_run
from validation.models import ModelPackage, ValidationRun

pytestmark = pytest.mark.django_db
HX = {"HX-Request": "true"}
POLL = {"HX-Request": "true", "X-Blindspot-Poll": "1"}


# --- packages -------------------------------------------------------------------------------------


def test_the_package_list_shows_the_vendors_packages_with_badges_and_no_one_elses(world):
    package_of(world.vendor_a, version="1.0", status=ModelPackage.Status.APPROVED)
    package_of(world.vendor_a, version="1.1", status=ModelPackage.Status.REFUSED)
    package_of(world.vendor_b, name="Rival", version="9.9")
    response = signed_in(world.vendor_user).get(reverse("web:packages"))
    body = response.content.decode()
    assert response.status_code == 200 and response.context["section"] == "packages"
    assert "badge--ok" in body and "Approved" in body and "badge--bad" in body and "Refused" in body
    assert "Rival" not in body and "9.9" not in body


def test_the_package_list_paginates_on_the_server(world):
    for i in range(27):
        package_of(world.vendor_a, version=f"1.{i}")
    client = signed_in(world.vendor_user)
    first = client.get(reverse("web:packages"))
    assert len(first.context["rows"]) == 25 and "Page 1 of 2" in first.content.decode()
    second = client.get(reverse("web:packages") + "?page=2")
    assert len(second.context["rows"]) == 2


def test_the_package_page_shows_the_manifest_digest_timings_versions_and_runs(world):
    package = package_of(
        world.vendor_a,
        version="2.0",
        status=ModelPackage.Status.SUBMITTED,
        smoke_load_seconds=1.234,
        smoke_batch_seconds=0.456,
        refusal_detail="Traceback: secret stderr of the team",
    )
    older = package_of(world.vendor_a, version="1.0", status=ModelPackage.Status.APPROVED)
    other_model = package_of(world.vendor_a, name="Other", version="5.0")
    run = run_of(older)
    response = signed_in(world.vendor_user).get(reverse("web:package", args=[package.pk]))
    body = response.content.decode()
    assert package.sha256 in body and "1.23 s" in body and "0.46 s" in body
    assert "block3" in body and "64 × 64 px" in body and "percentile" in body
    assert "Awaiting review" in body
    assert reverse("web:package", args=[older.pk]) in body
    assert reverse("web:package", args=[other_model.pk]) not in body
    # Not this package's run; the older version's page lists it.
    assert reverse("web:run", args=[run.pk]) not in body
    older_page = signed_in(world.vendor_user).get(reverse("web:package", args=[older.pk]))
    assert reverse("web:run", args=[run.pk]) in older_page.content.decode()
    assert "secret stderr" not in body  # the team's detail never reaches the vendor


def test_the_package_status_polls_while_testing_and_stops_with_286_once_decided(world):
    package = package_of(world.vendor_a, status=ModelPackage.Status.TESTING)
    client = signed_in(world.vendor_user)
    url = reverse("web:package-status", args=[package.pk])
    page = client.get(reverse("web:package", args=[package.pk])).content.decode()
    assert f'hx-get="{url}"' in page and "every 2s, blindspot:visible" in page
    testing = client.get(url, headers=POLL)
    assert testing.status_code == 200 and "hx-get" in testing.content.decode()
    ModelPackage.objects.filter(pk=package.pk).update(
        status=ModelPackage.Status.REFUSED,
        refusal_category="load",
        refusal_reasons=["The model could not be loaded."],
        refusal_detail="secret traceback",
    )
    refused = client.get(url, headers=POLL)
    body = refused.content.decode()
    assert refused.status_code == 286 and "hx-get" not in body
    assert "The model could not be loaded." in body and "secret traceback" not in body


def _tar(members: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    buffer.name = "bad.tar"
    return buffer


def test_the_upload_page_has_a_progress_bar_and_a_labelled_file_input(world):
    body = signed_in(world.vendor_user).get(reverse("web:package-upload")).content.decode()
    assert "data-upload" in body and "<progress data-upload-progress hidden" in body
    assert 'hx-encoding="multipart/form-data"' in body and '<label for="id_file">' in body
    assert "data-upload-text" in body


def broken_manifest_package(package_file) -> io.BytesIO:
    """The real package with a manifest that breaks three rules of the schema."""
    with tarfile.open(package_file) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    manifest = json.loads(members["manifest.json"])
    manifest["threshold"] = 7
    manifest["task"] = "segmentation"
    del manifest["input"]
    members["manifest.json"] = json.dumps(manifest).encode()
    return _tar(members)


def test_a_bad_manifest_is_refused_with_each_problem_on_its_own_line_and_nothing_stored(
    world, package_file
):
    archive = broken_manifest_package(package_file)
    response = signed_in(world.vendor_user).post(
        reverse("web:package-upload"), {"file": archive}, headers=HX
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "Package rejected: the manifest is invalid" in body and body.count("<li>") >= 3
    assert "<html" not in body  # the form fragment only
    assert not ModelPackage.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.PACKAGE_REJECTED_AT_INTAKE).exists()


def test_a_file_that_is_not_an_archive_is_refused_on_a_plain_post_with_400(world):
    junk = io.BytesIO(b"this is not a tar archive at all")
    junk.name = "model.txt"
    response = signed_in(world.vendor_user).post(reverse("web:package-upload"), {"file": junk})
    assert response.status_code == 400 and "<html" in response.content.decode()
    assert "Package rejected" in response.content.decode()
    assert not ModelPackage.objects.exists()


def test_an_upload_without_a_file_says_so(world):
    response = signed_in(world.vendor_user).post(reverse("web:package-upload"), {}, headers=HX)
    assert response.status_code == 422 and "Choose a package archive" in response.content.decode()


def test_an_accepted_upload_goes_to_the_package_page_as_testing(world, package_file):
    client = signed_in(world.vendor_user)
    with open(package_file, "rb") as archive:
        response = client.post(reverse("web:package-upload"), {"file": archive}, headers=HX)
    package = ModelPackage.objects.get()
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("web:package", args=[package.pk])
    assert package.status == ModelPackage.Status.TESTING and package.vendor == world.vendor_a
    with open(package_file, "rb") as archive:
        again = client.post(reverse("web:package-upload"), {"file": archive})
    assert again.status_code == 400 and "already been submitted" in again.content.decode()


def test_an_accepted_plain_upload_redirects_with_303_or_302(world, package_file):
    with open(package_file, "rb") as archive:
        response = signed_in(world.vendor_user).post(
            reverse("web:package-upload"), {"file": archive}
        )
    assert response.status_code in (302, 303)
    assert response["Location"] == reverse("web:package", args=[ModelPackage.objects.get().pk])


# --- runs -----------------------------------------------------------------------------------------


def test_the_run_list_shows_state_cases_and_the_typical_duration_of_similar_runs(world):
    package = package_of(world.vendor_a, status=ModelPackage.Status.APPROVED)
    now = timezone.now()
    for minutes, cases in ((10, 100), (20, 150), (30, 60), (99, 1000)):
        run_of(
            package,
            status=ValidationRun.Status.ISSUED,
            cases_total=cases,
            cases_done=cases,
            finished_at=now,
        )
        ValidationRun.objects.filter(finished_at=now, cases_total=cases).update(
            queued_at=now - timedelta(minutes=minutes)
        )
    active = run_of(package, status=ValidationRun.Status.RUNNING, cases_total=100, cases_done=40)
    lonely = run_of(package, status=ValidationRun.Status.QUEUED, cases_total=5)
    run_of(package_of(world.vendor_b, name="Rival"), status=ValidationRun.Status.RUNNING)
    response = signed_in(world.vendor_user).get(reverse("web:runs"))
    body = response.content.decode()
    rows = {row["run"].pk: row for row in response.context["rows"]}
    assert set(rows) == set(
        ValidationRun.objects.filter(package__vendor=world.vendor_a).values_list("pk", flat=True)
    )
    # 100 cases: similar are 100, 150 and 60 (not 1000): median 20 minutes of 3 runs.
    assert rows[active.pk]["typical"] == "About 20 min 00 s (median of 3 similar runs)"
    assert rows[lonely.pk]["typical"] == "No similar run yet"
    assert "40 / 100" in body and "Running" in body and "Rival" not in body


def test_the_run_page_shows_the_stepper_and_polls_until_a_final_state(world):
    package = package_of(world.vendor_a, status=ModelPackage.Status.APPROVED)
    run = run_of(
        package,
        status=ValidationRun.Status.SCORING,
        cases_total=16,
        cases_done=16,
        started_at=timezone.now(),
        stage_seconds={"inference": 2.5},
    )
    client = signed_in(world.vendor_user)
    url = reverse("web:run-progress", args=[run.pk])
    page = client.get(reverse("web:run", args=[run.pk]))
    assert [s["state"] for s in page.context["steps"]] == [
        "done", "done", "current", "todo", "todo", "todo", "todo"
    ]  # fmt: skip
    assert f'hx-get="{url}"' in page.content.decode() and page.context["section"] == "runs"
    assert client.get(url, headers=POLL).status_code == 200
    ValidationRun.objects.filter(pk=run.pk).update(status=ValidationRun.Status.ISSUED)
    final = client.get(url, headers=POLL)
    assert final.status_code == 286 and "hx-get" not in final.content.decode()
    assert final.content.decode().count('<li class="done">') == 7


def test_a_failed_run_shows_where_it_stopped_and_only_the_public_reason(world):
    package = package_of(world.vendor_a, status=ModelPackage.Status.APPROVED)
    run = run_of(
        package,
        status=ValidationRun.Status.FAILED,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        stage_seconds={"inference": 2.5},
        error_public="The model exceeded its time budget.",
        error_detail="stderr: secret model output",
        failure_category="timeout",
    )
    response = signed_in(world.vendor_user).get(reverse("web:run-progress", args=[run.pk]))
    body = response.content.decode()
    assert response.status_code == 286
    assert '<li class="failed">Scoring' in body and body.count('<li class="done">') == 2
    assert "The model exceeded its time budget." in body and "secret model output" not in body


# --- results and figures --------------------------------------------------------------------------


def test_results_show_criteria_with_estimates_intervals_and_verdicts_and_suppress_small_cells(
    world,
):
    package = package_of(world.vendor_a, status=ModelPackage.Status.APPROVED)
    run = scored_run(package)
    response = signed_in(world.vendor_user).get(reverse("web:run-results", args=[run.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    criteria = response.context["criteria"]
    assert [c["passed"] for c in criteria] == [True, False]
    assert criteria[0]["interval"]["lower"] is not None
    assert "badge--ok" in body and "Pass" in body and "Fail" in body
    rows = {row["group"]: row for row in response.context["subgroups"]}
    assert rows["X"] == {"attribute": "sex", "group": "X", "suppressed": True}
    assert "Suppressed" in body and "fewer than 5 cases" in body
    for name in ("roc", "forest", "calibration"):
        assert reverse("web:run-plot", args=[run.pk, name]) in body


# Sex F and M (30 cases each) are both under this minimum: no two groups can be compared.
UNDECIDABLE = {
    "min_cell_size": 40,
    "acceptance_criteria": [{"metric": "auc", "bound": "lower", "comparator": ">=", "value": 0.5}],
    "fairness_criteria": [
        {
            "attribute": "sex",
            "metric": "tpr_difference",
            "bound": "estimate",
            "comparator": "<=",
            "value": 0.2,
        }
    ],
}


def test_results_show_a_criterion_the_data_cannot_decide_as_not_judgeable(world):
    package = package_of(world.vendor_a, status=ModelPackage.Status.APPROVED)
    run = scored_run(package, protocol_changes=UNDECIDABLE)
    response = signed_in(world.vendor_user).get(reverse("web:run-results", args=[run.pk]))
    body = response.content.decode()
    auc, fairness = response.context["criteria"]
    assert auc["passed"] is True
    assert fairness["judgeable"] is False and fairness["passed"] is None
    assert response.context["verdict"] == "not judgeable"
    assert "Overall: not judgeable" in body and "Overall: pass" not in body
    assert body.count("Not judgeable</span>") == 1 and "badge--warn" in body
    assert "disparities undefined: 0 group(s) with n &gt;= 40" in body  # the reason
    console = signed_in(world.reviewer).get(reverse("web:console-run-results", args=[run.pk]))
    html = console.content.decode()
    assert "Acceptance: not judgeable" in html and "Not judgeable</span>" in html


def test_results_are_exactly_what_the_api_gives_the_vendor(world):
    package = package_of(world.vendor_a, status=ModelPackage.Status.APPROVED)
    run = scored_run(package)
    client = signed_in(world.vendor_user)
    api = client.get(f"/api/v1/runs/{run.pk}/results/").json()
    page = client.get(reverse("web:run-results", args=[run.pk]))
    assert page.context["results"] == api


def test_the_figures_are_the_reports_svgs_drawn_from_disclosed_numbers(world):
    from reports import plots

    package = package_of(world.vendor_a, status=ModelPackage.Status.APPROVED)
    run = scored_run(package)
    client = signed_in(world.vendor_user)
    api = client.get(f"/api/v1/runs/{run.pk}/results/").json()
    response = client.get(reverse("web:run-plot", args=[run.pk, "forest"]))
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<?xml") and b"<svg" in response.content
    expected = plots.forest_plot(
        api["subgroups"], metric="sensitivity", reference=api["primary"]["sensitivity"]["estimate"]
    )
    import base64

    assert expected is not None
    assert response.content == base64.b64decode(expected.split(",", 1)[1])
    assert b"sex: X" not in response.content  # the suppressed cell is not drawn
    for name in ("roc", "calibration"):
        assert client.get(reverse("web:run-plot", args=[run.pk, name])).status_code == 200
    assert client.get(f"/runs/{run.pk}/plots/other.svg").status_code == 404


def test_results_before_scoring_say_so_and_figures_answer_404(world):
    package = package_of(world.vendor_a, status=ModelPackage.Status.APPROVED)
    run = run_of(package, status=ValidationRun.Status.RUNNING)
    client = signed_in(world.vendor_user)
    response = client.get(reverse("web:run-results", args=[run.pk]))
    assert response.status_code == 200 and "not available yet" in response.content.decode()
    assert client.get(reverse("web:run-plot", args=[run.pk, "roc"])).status_code == 404


def test_the_run_pages_take_a_bounded_number_of_queries(world, django_assert_max_num_queries):
    package = package_of(world.vendor_a, status=ModelPackage.Status.APPROVED)
    for _ in range(10):
        run_of(package, status=ValidationRun.Status.RUNNING, cases_total=10)
    client = signed_in(world.vendor_user)
    with django_assert_max_num_queries(15):
        client.get(reverse("web:runs"))
    with django_assert_max_num_queries(15):
        client.get(reverse("web:packages"))
