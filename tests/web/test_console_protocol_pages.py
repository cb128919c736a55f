"""The protocol editor's pages without a browser: the list, writing a protocol and a new version
with validation as you type (schema and consistency problems at their paths, JSON syntax at its
line and column), the diff against the previous version, locking with a confirmation, and the
read-only page of a locked version. Writes go through the services, so their audit events."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditAction, AuditEvent
from tests.factories import protocol_document
from tests.support.people import signed_in
from validation.models import Protocol
from validation.protocol_document import protocol_hash, with_defaults
from validation.services.protocols import protocol_create, protocol_lock
from web.views.console_protocols import DiffRow, canonical_text, document_diff, parse_document

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
VALIDATE = "web:console-protocol-validate"


def text(document) -> str:
    return json.dumps(document, indent=2)


@pytest.fixture
def first(world) -> Protocol:
    return protocol_create(
        actor=world.reviewer, name="Chest screening", document=protocol_document()
    )


# --- the list -------------------------------------------------------------------------------------


def test_the_list_shows_each_version_with_its_status_hash_and_lock_time(world, first):
    protocol_lock(actor=world.reviewer, protocol=first)
    draft = protocol_create(
        actor=world.qa, name="Chest screening", document=protocol_document(min_cell_size=5)
    )
    first.refresh_from_db()
    response = signed_in(world.reviewer).get(reverse("web:console-protocols"))
    assert response.status_code == 200
    page = response.content.decode()
    assert response.context["section"] == "protocols"
    assert "Chest screening v1" in page and "Chest screening v2" in page
    assert page.index("Chest screening v2") < page.index("Chest screening v1")  # newest first
    assert "Locked" in page and "Draft" in page
    assert first.sha256[:12] in page
    assert reverse("web:console-protocol", args=[draft.pk]) in page
    assert "New protocol" in page
    assert reverse("protocol-schema") in page


def test_the_list_paginates_on_the_server(world):
    for n in range(27):
        protocol_create(actor=world.reviewer, name=f"P{n:02d}", document=protocol_document())
    client = signed_in(world.reviewer)
    first_page = client.get(reverse("web:console-protocols")).content.decode()
    assert "Page 1 of 2 (27 in all)" in first_page
    assert "P24 v1" in first_page and "P25 v1" not in first_page
    second = client.get(reverse("web:console-protocols"), {"page": 2}).content.decode()
    assert "P25 v1" in second and "P26 v1" in second


def test_an_auditor_reads_the_list_without_a_new_button(world, first):
    page = signed_in(world.auditor).get(reverse("web:console-protocols")).content.decode()
    assert "Chest screening v1" in page
    assert "New protocol" not in page


def test_the_list_makes_the_same_number_of_queries_for_2_or_12_protocols(world):
    client = signed_in(world.reviewer)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("web:console-protocols")).status_code == 200
        # The session's own writes come and go with its idle clock; count the page's reads.
        sql = [q["sql"] for q in captured.captured_queries]
        return sum("django_session" not in q and "SAVEPOINT" not in q for q in sql)

    def add(n: int) -> None:
        for _ in range(n):
            name = f"P{Protocol.objects.count()}"
            protocol = protocol_create(
                actor=world.reviewer, name=name, document=protocol_document()
            )
            protocol_lock(actor=world.qa, protocol=protocol)

    add(2)
    few = queries()
    add(10)
    assert queries() == few


# --- validation as you type -----------------------------------------------------------------------


def test_the_new_page_starts_from_a_valid_document_with_live_validation_wired(world):
    response = signed_in(world.reviewer).get(reverse("web:console-protocol-new"))
    assert response.status_code == 200
    page = response.content.decode()
    assert response.context["problems"] == []
    assert 'hx-trigger="input changed delay:400ms"' in page
    assert f'hx-post="{reverse(VALIDATE)}"' in page
    assert 'id="protocol-check"' in page and "Valid" in page
    assert '<label for="id_document">' in page and 'for="id_name"' in page
    assert "No protocol of this name yet" in page


def test_validate_lists_every_schema_problem_at_its_path(world):
    document = protocol_document(primary_endpoint="f1", min_cell_size=0)
    document["acceptance_criteria"][0]["metric"] = "youden"
    response = signed_in(world.reviewer).post(
        reverse(VALIDATE), {"name": "X", "document": text(document)}, headers=HTMX
    )
    assert response.status_code == 200
    problems = {(p.where, p.message.split(" ")[0]) for p in response.context["problems"]}
    assert ("acceptance_criteria/0/metric", "'youden'") in problems
    assert ("primary_endpoint", "'f1'") in problems
    assert ("min_cell_size", "0") in problems
    page = response.content.decode()
    assert "3 problems" in page
    assert '<code class="problem-list__where">acceptance_criteria/0/metric</code>' in page
    assert 'id="protocol-diff" ' in page and 'hx-swap-oob="true"' in page  # the diff, out of band
    assert not Protocol.objects.exists()  # nothing stored


def test_validate_shows_the_consistency_checks_at_their_paths(world):
    document = protocol_document(
        subgroups=[{"attribute": "age", "bins": [60, 40]}, {"attribute": "age"}],
        fairness_criteria=[
            {
                "attribute": "site",
                "metric": "tpr_difference",
                "bound": "estimate",
                "comparator": "<=",
                "value": 0.1,
            }
        ],
    )
    response = signed_in(world.reviewer).post(reverse(VALIDATE), {"document": text(document)})
    wheres = [p.where for p in response.context["problems"]]
    assert wheres == ["subgroups/0/bins", "subgroups/1/attribute", "fairness_criteria/0/attribute"]


def test_validate_shows_performance_goal_problems_at_their_paths(world):
    document = protocol_document(
        performance_goals=[{"metric": "youden", "goal": 0.8}, {"metric": "auc", "goal": -1}]
    )
    response = signed_in(world.reviewer).post(reverse(VALIDATE), {"document": text(document)})
    wheres = sorted(p.where for p in response.context["problems"])
    assert wheres == ["performance_goals/0/metric", "performance_goals/1/goal"]


def test_validate_gives_a_json_syntax_error_its_line_and_column(world, first):
    broken = '{\n  "schema_version": "1.0",\n  "task" "binary-classification"\n}'
    response = signed_in(world.reviewer).post(
        reverse(VALIDATE), {"name": first.name, "document": broken}
    )
    [problem] = response.context["problems"]
    assert problem.where == "line 3, column 10"
    assert "delimiter" in problem.message
    page = response.content.decode()
    assert "The text is not JSON yet" in page
    assert "The changes show once the text is JSON" in page


def test_a_repeated_key_or_nan_is_a_problem():
    ok, _document, problems = parse_document('{"a": 1, "a": 2}')
    assert ok and [p.message for p in problems] == ["the key 'a' appears more than once"]
    ok, _document, problems = parse_document('{"a": NaN}')
    assert not ok and "NaN" in problems[0].message


def test_validate_of_a_valid_document_summarises_it_and_names_the_version_it_saves_as(world, first):
    document = protocol_document(primary_endpoint="sensitivity")
    response = signed_in(world.reviewer).post(
        reverse(VALIDATE), {"name": "Chest screening", "document": text(document)}
    )
    page = response.content.decode()
    assert response.context["problems"] == []
    assert "Saves as <strong>Chest screening v2</strong>" in page
    assert "sensitivity" in page
    assert "proportions: wilson, AUC: delong-logit" in page  # the defaults it will record
    # The diff against v1: the primary endpoint line changed, defaults compare equal.
    assert response.context["added"] == 1 and response.context["removed"] == 1
    changed = [
        (r.kind, r.text.strip()) for r in response.context["diff"] if r.kind in ("added", "removed")
    ]
    assert changed == [
        ("removed", '"primary_endpoint": "auc",'),
        ("added", '"primary_endpoint": "sensitivity",'),
    ]
    assert "1 line added" in page and "+ added" in page


# --- saving ---------------------------------------------------------------------------------


def test_saving_a_new_protocol_creates_it_through_the_service_and_redirects(world):
    response = signed_in(world.reviewer).post(
        reverse("web:console-protocol-new"),
        {"name": "Chest screening", "document": text(protocol_document())},
    )
    protocol = Protocol.objects.get()
    assert response.status_code == 303
    assert response["Location"] == reverse("web:console-protocol", args=[protocol.pk])
    assert (protocol.name, protocol.version, protocol.is_locked) == ("Chest screening", 1, False)
    assert protocol.document == with_defaults(protocol_document())
    event = AuditEvent.objects.get(action=AuditAction.PROTOCOL_CREATED)
    assert event.actor == world.reviewer
    assert event.payload == {"name": "Chest screening", "version": 1}


def test_saving_with_htmx_answers_hx_redirect(world):
    response = signed_in(world.qa).post(
        reverse("web:console-protocol-new"),
        {"name": "Chest screening", "document": text(protocol_document())},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse(
        "web:console-protocol", args=[Protocol.objects.get().pk]
    )


def test_saving_an_invalid_document_lists_every_problem_and_stores_nothing(world):
    document = protocol_document(primary_endpoint="f1")
    document["acceptance_criteria"][0]["metric"] = "youden"
    client = signed_in(world.reviewer)
    data = {"name": "Chest screening", "document": text(document)}
    htmx = client.post(reverse("web:console-protocol-new"), data, headers=HTMX)
    assert htmx.status_code == 422
    page = htmx.content.decode()
    assert "The protocol document is invalid." in page
    assert "acceptance_criteria/0/metric: &#x27;youden&#x27; is not one of" in page
    assert "primary_endpoint: &#x27;f1&#x27;" in page
    assert page.lstrip().startswith('<form id="protocol-form"')  # the form fragment, then OOB
    assert "Traceback" not in page
    plain = client.post(reverse("web:console-protocol-new"), data)
    assert plain.status_code == 400
    assert "<h1>New protocol</h1>" in plain.content.decode()
    assert not Protocol.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.PROTOCOL_CREATED).exists()


def test_saving_broken_json_names_the_line_and_column(world):
    response = signed_in(world.reviewer).post(
        reverse("web:console-protocol-new"), {"name": "X", "document": '{"a": 1,}'}
    )
    assert response.status_code == 400
    assert "line 1, column 9: Expecting property name" in response.content.decode()
    assert not Protocol.objects.exists()


def test_a_new_version_is_prefilled_and_saves_as_the_next_version_of_the_same_name(world, first):
    client = signed_in(world.reviewer)
    url = reverse("web:console-protocol-new-version", args=[first.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert page.context["form"]["document"].value() == canonical_text(first.document)
    assert page.context["previous"] == first
    assert "Chest screening" in page.content.decode()
    # The name is fixed: a posted name is ignored.
    changed = {**first.document, "min_cell_size": 7}
    response = client.post(url, {"name": "Other", "document": text(changed)})
    assert response.status_code == 303
    second = Protocol.objects.get(version=2)
    assert second.name == "Chest screening" and second.document["min_cell_size"] == 7


# --- the detail page, the diff, locking ---------------------------------------------------


def test_the_detail_of_a_draft_shows_its_document_and_a_lock_form(world, first):
    response = signed_in(world.reviewer).get(reverse("web:console-protocol", args=[first.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Chest screening v1" in page and "Draft" in page
    assert "&quot;min_cell_size&quot;: 3" in page
    assert "Lock protocol" in page and 'name="confirm"' in page
    assert "This is the first version: nothing to compare." in page


def test_the_detail_shows_the_diff_against_the_previous_version(world, first):
    second = protocol_create(
        actor=world.reviewer,
        name="Chest screening",
        document=protocol_document(min_cell_size=5, multiplicity="bh"),
    )
    response = signed_in(world.reviewer).get(reverse("web:console-protocol", args=[second.pk]))
    page = response.content.decode()
    assert response.context["previous"] == first
    kinds = [(row.kind, row.text.strip()) for row in response.context["diff"]]
    assert ("removed", '"min_cell_size": 3,') in kinds
    assert ("added", '"min_cell_size": 5,') in kinds
    assert ("removed", '"multiplicity": "holm",') in kinds
    assert "Changes against Chest screening v1" in page
    assert "+ added" in page and "− removed" in page
    assert "2 lines added" in page and "2 lines removed" in page


def test_document_diff_numbers_lines_and_folds_unchanged_runs():
    old = {f"k{n:02d}": n for n in range(20)}
    new = {**old, "k10": 99}
    rows = document_diff(old, new)
    assert rows[0] == DiffRow("skipped", None, None, "8 unchanged lines")
    assert DiffRow("removed", 12, None, '  "k10": 10,') in rows
    assert DiffRow("added", None, 12, '  "k10": 99,') in rows
    assert rows[-1] == DiffRow("skipped", None, None, "7 unchanged lines")
    assert document_diff(old, dict(old)) == []


def test_locking_needs_the_confirmation(world, first):
    client = signed_in(world.reviewer)
    url = reverse("web:console-protocol-lock", args=[first.pk])
    htmx = client.post(url, {}, headers=HTMX)
    assert htmx.status_code == 422
    assert "Tick the confirmation to lock the protocol." in htmx.content.decode()
    assert client.post(url, {}).status_code == 400
    first.refresh_from_db()
    assert not first.is_locked


def test_locking_hashes_the_document_and_the_page_is_read_only_after(world, first):
    client = signed_in(world.reviewer)
    response = client.post(
        reverse("web:console-protocol-lock", args=[first.pk]), {"confirm": "on"}, headers=HTMX
    )
    assert response["HX-Redirect"] == reverse("web:console-protocol", args=[first.pk])
    first.refresh_from_db()
    assert first.is_locked and first.sha256 == protocol_hash(first.document)
    event = AuditEvent.objects.get(action=AuditAction.PROTOCOL_LOCKED)
    assert event.actor == world.reviewer and event.payload == {"sha256": first.sha256}
    page = client.get(reverse("web:console-protocol", args=[first.pk])).content.decode()
    assert first.sha256 in page
    assert "Read-only" in page
    assert "Lock protocol" not in page and 'name="confirm"' not in page
    assert reverse("web:console-protocol-new-version", args=[first.pk]) in page
    # Locking again changes nothing (the service is idempotent) and writes no second event.
    again = client.post(reverse("web:console-protocol-lock", args=[first.pk]), {"confirm": "on"})
    assert again.status_code == 303
    assert AuditEvent.objects.filter(action=AuditAction.PROTOCOL_LOCKED).count() == 1


def test_an_auditor_reads_the_detail_with_no_action(world, first):
    page = signed_in(world.auditor).get(reverse("web:console-protocol", args=[first.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Chest screening v1" in html
    assert "Lock protocol" not in html and "Write a new version" not in html


def test_a_refusal_with_paths_reads_as_lines_on_a_page():
    """A service's problems at a path (the API's shape) show as `path: detail` on a page."""
    from validation.errors import ApplicationError
    from web.views.flow import refusal_of

    refusal = ApplicationError(
        "Invalid.", errors=[{"path": "document.min_cell_size", "detail": "0 is too small"}, "x"]
    )
    assert refusal_of(refusal) == {
        "message": "Invalid.",
        "errors": ["document.min_cell_size: 0 is too small", "x"],
    }
