"""Schemathesis against the live OpenAPI document: every operation, with each role's real API
token, positive and negative data. No answer may be a 5xx, contradict its response schema, use
an undocumented status code or an undocumented content type; invalid data must be refused and
an operation that declares a token must refuse a request without one.

Heavy side effects stay out of the fuzzing on their own: an upload of random bytes is refused
at intake before any sandbox starts, and what a request queues on commit never runs inside the
test's transaction. The operations whose answers need real objects (a scored run's results, a
report's PDF, a dataset card) are also called with real ids below and checked the same way."""

import json

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from reports.models import Report
from tests.factories import DatasetVersionFactory, PackageFactory, RunFactory, issued_report
from tests.support.comparisons import comparison_scored, comparison_setup
from validation.models import Dataset, DatasetGrant, MetricResult
from validation.services.tokens import api_token_create

pytestmark = pytest.mark.django_db

CHECKS = [
    negative_data_rejection,
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# One person per role: vendor, partner steward, validation team, auditor.
ROLES = ("vendor_user", "steward", "reviewer", "auditor")
EXAMPLES = 12


@pytest.fixture
def tokens(world) -> dict[str, str]:
    return {
        role: api_token_create(actor=getattr(world, role), name="schemathesis")[1] for role in ROLES
    }


@pytest.fixture
def objects(world, settings):
    """A package, a sealed version granted to the vendor, a scored run and its issued report,
    so that lists are not empty and the explicit checks below have real ids."""
    package = PackageFactory.create(vendor=world.vendor_a, submitted_by=world.vendor_user)
    version = DatasetVersionFactory.create(
        dataset=Dataset.objects.create(partner=world.partner_a, name="Chest"),
        created_by=world.steward,
    )
    DatasetGrant.objects.create(
        dataset_version=version, vendor=world.vendor_a, granted_by=world.steward
    )
    run = RunFactory.create(package=package, dataset_version=version, requested_by=world.reviewer)
    for section, value in scored_sections().items():
        MetricResult.objects.create(run=run, section=section, value=value)
    report = issued_report(run)
    (settings.MEDIA_ROOT / "reports").mkdir(parents=True, exist_ok=True)
    (settings.MEDIA_ROOT / report.pdf_path).write_bytes(b"%PDF-1.7 test")
    # A scored comparison run (issue 18 item 13), so its list and detail have one to show.
    comparison = comparison_scored(world, comparison_setup(world))
    return {
        "package": package,
        "version": version,
        "run": run,
        "report": report,
        "comparison": comparison,
    }


def scored_sections() -> dict:
    """Every section a real scoring writes, from the real evaluation on made-up scores."""
    from validation.management.commands.demo import PROTOCOL
    from validation.protocol_document import with_defaults
    from validation.stats.evaluation import Plan, evaluate
    from validation.stats.independence import training_overlap

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    scores = np.clip(y * 0.4 + rng.random(120) * 0.6, 0, 1)
    scores[3] = np.nan
    groups = {
        "sex": rng.choice(["F", "M", "X"], 120, p=[0.48, 0.48, 0.04]),
        "manufacturer": rng.choice(["Acme", "Borealis"], 120),
        "age": rng.integers(20, 90, 120).astype(object),
        "race": rng.choice(["a", "b"], 120),
    }
    document = with_defaults({**PROTOCOL, "bootstrap": {"replicates": 20, "seed": 1}})
    # One case in 30 from a declared training scanner: a small cell for vendors (issue 18).
    cases = [{"manufacturer": "Acme", "model": "DR-500" if i % 30 else "X1"} for i in range(120)]
    mask, independence = training_overlap(cases, {"scanners": ["Acme X1"]})
    plan = Plan.from_protocol(document, 0.5)
    sections = evaluate(y, scores, groups, plan, training_source=mask)
    sections["independence"] = {**independence, "split": sections.pop("independence_split")}
    sections["failures"] = {"n_failed": 1, "n_failed_positive": 1, "n_failed_negative": 0}
    return json.loads(json.dumps(sections))


# Loaded at collection from the live schema view. (schemathesis 4.32.5's fixture-based loader,
# `schemathesis.pytest.from_fixture`, sets `Node._nodeid`, which pytest 9 no longer has.)
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json", application)


@pytest.fixture
def api_schema():
    return schema


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_keeps_its_contract_for_every_role(case, tokens, objects):
    for role in ROLES:
        # ignored_auth repeats the request without the token: once per case is enough.
        checks = [*CHECKS, ignored_auth] if role == ROLES[0] else CHECKS
        case.call_and_validate(headers={"Authorization": f"Bearer {tokens[role]}"}, checks=checks)


def _call(api_schema, path: str, method: str, token: str, **path_parameters):
    operation = api_schema[path][method]
    case = operation.Case(path_parameters=path_parameters)
    return case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)


def _content_type(response) -> str:
    value = {k.lower(): v for k, v in response.headers.items()}["content-type"]
    return value[0] if isinstance(value, list) else value


def test_results_match_their_typed_schema_for_every_audience(api_schema, tokens, objects):
    run = objects["run"]
    for role in ROLES:
        response = _call(api_schema, "/api/v1/runs/{id}/results/", "GET", tokens[role], id=run.pk)
        assert response.status_code == 200, (role, response.text)
        assert {"primary", "subgroups", "calibration", "acceptance"} <= set(response.json())
        independence = response.json()["independence"]
        if role == "reviewer":  # the validation team reads every number
            assert independence["n_overlap"] == 4 and independence["split"][0]["n"] == 4
        else:  # four cases from the declared scanner are a small cell, and so its complement
            assert independence["counts_suppressed"] and independence["n_overlap"] is None
            assert all(row["suppressed"] and "n" not in row for row in independence["split"])


def test_pdf_card_usage_and_details_match_their_schema(api_schema, tokens, objects):
    report, version = objects["report"], objects["version"]
    pdf = _call(api_schema, "/api/v1/reports/{id}/pdf/", "GET", tokens["vendor_user"], id=report.pk)
    assert pdf.status_code == 200 and _content_type(pdf) == "application/pdf"
    card = _call(
        api_schema, "/api/v1/dataset-cards/{id}/", "GET", tokens["vendor_user"], id=version.pk
    )
    assert card.status_code == 200 and card.json()["id"] == version.pk
    usage = _call(
        api_schema,
        "/api/v1/datasets/{id}/usage/",
        "GET",
        tokens["steward"],
        id=version.dataset_id,
    )
    assert usage.status_code == 200 and usage.json()["results"][0]["run"] == objects["run"].pk
    for path, pk in (
        ("/api/v1/runs/{id}/", objects["run"].pk),
        ("/api/v1/packages/{id}/", objects["package"].pk),
        ("/api/v1/reports/{id}/", report.pk),
        ("/api/v1/comparisons/{id}/", objects["comparison"].pk),
    ):
        for role in ("vendor_user", "reviewer"):
            assert _call(api_schema, path, "GET", tokens[role], id=pk).status_code == 200


def test_a_draft_report_pdf_is_a_documented_problem(api_schema, tokens, objects):
    run = RunFactory.create(package=objects["package"], dataset_version=objects["version"])
    draft = Report.objects.create(run=run, document={}, content_sha256="0" * 64)
    response = _call(
        api_schema, "/api/v1/reports/{id}/pdf/", "GET", tokens["reviewer"], id=draft.pk
    )
    assert response.status_code == 409
    assert _content_type(response) == "application/problem+json"
