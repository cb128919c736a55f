"""One error shape (RFC 9457 problem details) for every 4xx and 5xx of /api/v1/, cursor pages
on every list, strict query parameters, and the public schema and its documentation page."""

import io

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from tests.factories import PackageFactory, RunFactory
from validation.api.errors import exception_handler
from validation.services.tokens import api_token_create

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def _client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def _problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "errors"}
    assert body["status"] == status and body["type"] == "about:blank"
    assert isinstance(body["errors"], list)
    return body


def test_field_errors_carry_their_dotted_paths(world):
    body = _problem(
        _client(world.reviewer).post(
            "/api/v1/runs/", {"package": "x", "protocol": 1}, format="json"
        ),
        400,
    )
    assert body["title"] == "Bad Request"
    paths = {e["path"] for e in body["errors"]}
    assert paths == {"package", "dataset_version"}
    assert body["detail"] == "The request has 2 problems, listed in errors."


def test_nested_and_listed_field_errors_are_flattened():
    from rest_framework.exceptions import ValidationError

    from validation.api.errors import field_problems

    detail = ValidationError(
        {"input": {"height": ["Too big."]}, "labels": [{}, {"name": ["Required."]}], "x": "No."}
    ).detail
    assert list(field_problems(detail)) == [
        {"path": "input.height", "detail": "Too big."},
        {"path": "labels.1.name", "detail": "Required."},
        {"path": "x", "detail": "No."},
    ]


def test_authentication_failures_are_problems_with_their_challenge(world):
    anonymous = _problem(_client().get("/api/v1/runs/"), 401)
    assert anonymous["title"] == "Unauthorized"
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer bs_not-a-token")
    response = bad.get("/api/v1/runs/")
    assert _problem(response, 401)["detail"] == "Unknown API token."
    assert response["WWW-Authenticate"] == "Token"


def test_not_found_method_and_media_type_are_problems(world):
    client = _client(world.vendor_user)
    hidden = _problem(client.get("/api/v1/runs/987654/"), 404)
    assert hidden["detail"] == "Not found."
    _problem(client.delete("/api/v1/runs/"), 405)
    _problem(client.post("/api/v1/packages/", "x", content_type="text/plain"), 415)
    _problem(client.get("/api/v1/runs/", HTTP_ACCEPT="text/csv"), 406)


def test_an_unknown_api_path_is_a_problem_even_for_a_post(world):
    body = _problem(_client().post("/api/v1/no-such-thing/"), 404)
    assert body["detail"] == "No API endpoint at this path."
    hint = _problem(_client().get("/api/v1/runs"), 404)
    assert hint["detail"].endswith("/api/v1/runs/")
    # The web app keeps its own pages.
    assert "html" in _client().get("/no-such-page/")["Content-Type"]


def test_an_unexpected_exception_answers_a_bare_500_problem():
    response = exception_handler(RuntimeError("secret partner path /data/C00001.dcm"), {})
    assert response.status_code == 500 and response["Content-Type"] == PROBLEM
    assert b"C00001" not in response.content and b"Traceback" not in response.content
    assert response.problem["detail"] == "The server failed to answer this request."


def test_refusals_stay_audited_with_the_problem_they_answered(world):
    _client(world.vendor_user).get("/api/v1/runs/987654/")
    event = AuditEvent.objects.filter(action=AuditAction.REQUEST_REFUSED).get()
    assert event.payload["status"] == 404
    assert event.payload["answer"]["title"] == "Not Found"


def test_lists_are_cursor_pages_that_a_client_follows(world):
    for _ in range(5):
        PackageFactory.create(vendor=world.vendor_a)
    client = _client(world.vendor_user)
    seen, url = [], "/api/v1/packages/?page_size=2"
    while url:
        page = client.get(url).json()
        assert set(page) == {"next", "previous", "results"} and len(page["results"]) <= 2
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert seen == sorted(seen, reverse=True) and len(seen) == 5


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("?limit=10", "limit"),
        ("?page_size=0", "page_size"),
        ("?page_size=201", "page_size"),
        ("?cursor=garbage", "cursor"),
        ("?status=done", "status"),
        ("?package=abc", "package"),
    ],
)
def test_unsupported_or_bad_query_parameters_are_400_naming_them(world, query, path):
    body = _problem(_client(world.reviewer).get(f"/api/v1/runs/{query}"), 400)
    assert [e["path"] for e in body["errors"]] == [path]


def test_runs_filter_by_status_and_package(world):
    package = PackageFactory.create(vendor=world.vendor_a)
    queued = RunFactory.create(package=package)
    failed = RunFactory.create(status="failed", error_public="The model process crashed.")
    client = _client(world.reviewer)

    def ids(query):
        return [r["id"] for r in client.get(f"/api/v1/runs/{query}").json()["results"]]

    assert ids("?status=failed") == [failed.pk]
    assert ids("?status=queued") == [queued.pk]
    assert ids("?status=queued&status=failed") == [failed.pk, queued.pk]
    assert ids(f"?package={package.pk}") == [queued.pk]
    assert ids("?status=issued") == []


def test_the_schema_is_public_and_passes_validation_without_warnings():
    response = _client().get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/runs/{id}/results/" in paths
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)


def test_every_operation_documents_its_problems_and_describes_itself():
    schema = _client().get("/api/v1/schema/?format=json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation["summary"] and operation["description"], (method, path)
            errors = {c for c in operation["responses"] if c >= "400"}
            assert "500" in errors, (method, path)
            for code in errors:
                content = operation["responses"][code]["content"]
                assert list(content) == [PROBLEM], (method, path, code)
    results = schema["paths"]["/api/v1/runs/{id}/results/"]["get"]["responses"]["200"]
    assert results["content"]["application/json"]["schema"]["$ref"].endswith("/RunResults")
    pdf = schema["paths"]["/api/v1/reports/{id}/pdf/"]["get"]["responses"]["200"]["content"]
    assert pdf == {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}
    assert "requestBody" not in schema["paths"]["/api/v1/runs/{id}/cancel/"]["post"]
    assert "202" in schema["paths"]["/api/v1/datasets/{id}/imports/"]["post"]["responses"]
    upload = schema["components"]["schemas"]["PackageUploadRequest"]["properties"]["file"]
    assert upload == {"type": "string", "format": "binary"}
    card_list = schema["components"]["schemas"]["PaginatedDatasetCardList"]
    assert card_list["properties"]["results"]["type"] == "array"


def test_the_documentation_page_is_public_and_self_hosted(world):
    response = _client().get("/api/v1/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "http://" not in page and "https://" not in page and "<style" not in page
    assert "default-src 'self'" in response["Content-Security-Policy"]
    script = _client().get("/api/v1/docs/?script=")
    assert script.status_code == 200 and "/api/v1/schema/" in script.content.decode()


def test_a_token_reads_the_api_and_a_revoked_one_gets_a_problem(world):
    from validation.services.tokens import api_token_revoke

    token, secret = api_token_create(actor=world.vendor_user, name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/packages/").status_code == 200
    api_token_revoke(actor=world.vendor_user, token=token)
    assert _problem(client.get("/api/v1/packages/"), 401)["detail"] == "This API token was revoked."


def test_throttled_and_oversized_requests_are_problems_with_their_headers():
    from django.core.exceptions import RequestDataTooBig
    from rest_framework.exceptions import Throttled

    throttled = exception_handler(Throttled(wait=3), {})
    assert throttled.status_code == 429 and throttled["Retry-After"] == "3"
    assert throttled["Content-Type"] == PROBLEM
    too_big = exception_handler(RequestDataTooBig("big"), {})
    assert too_big.status_code == 413 and too_big.problem["title"] == "Request Entity Too Large"


def test_problem_lines_that_name_a_field_answer_at_its_dotted_path():
    from validation.errors import ApplicationError

    exc = ApplicationError(
        "The manifest is invalid.",
        errors=[
            "input/height: 4096 is greater than the maximum of 2048",
            "(root): 'name' is a required property",
            "Something about the whole upload.",
        ],
        errors_at="manifest",
    )
    assert exception_handler(exc, {}).problem["errors"] == [
        {"path": "manifest.input.height", "detail": "4096 is greater than the maximum of 2048"},
        {"path": "manifest", "detail": "'name' is a required property"},
        {"path": "manifest", "detail": "Something about the whole upload."},
    ]
    plain = ApplicationError("No.", errors=["subgroups/0/bins: must be strictly increasing"])
    assert exception_handler(plain, {}).problem["errors"] == [
        {"path": "subgroups.0.bins", "detail": "must be strictly increasing"}
    ]
