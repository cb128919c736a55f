"""Protocols through the API (issue 17, item 3): who reads which, the validation team writes,
versions and locks them through the console's services (same audit events), every problem of
a document at its path, and every other role's write refused (403) and audited."""

import pytest
from rest_framework.test import APIClient

from audit.models import AuditAction, AuditEvent
from tests.factories import (
    DatasetVersionFactory,
    PackageFactory,
    RunFactory,
    UserFactory,
    protocol_document,
)
from tests.support.people import WORLD_PEOPLE
from validation.models import Dataset, DatasetGrant, Protocol
from validation.protocol_document import DEFAULTS, protocol_hash
from validation.services.protocols import protocol_create, protocol_lock

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

MISSING = 987654
NOT_TEAM = ["vendor_user", "other_vendor_user", "steward", "other_steward", "auditor"]


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _paths(body: dict) -> list[str]:
    """The paths of a refusal's problems: {"path", "detail"} entries (a plain string is a
    problem of the request as a whole)."""
    return [e["path"] if isinstance(e, dict) else "" for e in body.get("errors", [])]


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# --- reading ------------------------------------------------------------------------------------


@pytest.fixture
def protocols(world):
    """`granted`: named by vendor A's grant; `ran`: of vendor A's run; `locked` and `draft`:
    named by nothing (a vendor sees `locked` only once a grant to it names no protocol)."""

    def make(name: str, *, locked: bool = False) -> Protocol:
        protocol = protocol_create(actor=world.reviewer, name=name, document=protocol_document())
        return protocol_lock(actor=world.reviewer, protocol=protocol) if locked else protocol

    made = {
        "granted": make("Granted", locked=True),
        "ran": make("Ran", locked=True),
        "locked": make("Locked", locked=True),
        "draft": make("Draft"),
    }
    version = DatasetVersionFactory.create(
        dataset=Dataset.objects.create(partner=world.partner_a, name="Chest"),
        created_by=world.steward,
    )
    DatasetGrant.objects.create(
        dataset_version=version,
        vendor=world.vendor_a,
        protocol=made["granted"],
        granted_by=world.steward,
    )
    RunFactory.create(
        package=PackageFactory.create(vendor=world.vendor_a),
        dataset_version=version,
        protocol=made["ran"],
    )
    return made


ALL = {"granted", "ran", "locked", "draft"}
SEES = {
    "vendor_user": {"granted", "ran"},
    "other_vendor_user": set(),
    "steward": ALL,  # stewards grant per protocol
    "other_steward": ALL,
    "reviewer": ALL,
    "qa": ALL,
    "auditor": ALL,
}


@pytest.mark.parametrize("role", WORLD_PEOPLE)
def test_each_role_lists_and_reads_the_protocols_it_may_name(world, protocols, role):
    client = _client(getattr(world, role))
    listed = client.get("/api/v1/protocols/")
    assert listed.status_code == 200
    rows = listed.json()["results"]
    by_pk = {p.pk: key for key, p in protocols.items()}
    assert {by_pk[row["id"]] for row in rows} == SEES[role]
    assert [row["id"] for row in rows] == sorted(
        (row["id"] for row in rows), reverse=True
    )  # newest first, as every list
    missing = client.get(f"/api/v1/protocols/{MISSING}/")
    assert missing.status_code == 404
    for key, protocol in protocols.items():
        detail = client.get(f"/api/v1/protocols/{protocol.pk}/")
        if key in SEES[role]:
            assert detail.status_code == 200
            assert detail.json()["document"] == protocol.document
        else:
            assert detail.status_code == 404, key
            assert detail.content == missing.content  # hidden answers exactly like missing


def test_a_protocol_reads_as_its_record(world, protocols):
    locked, draft = protocols["locked"], protocols["draft"]
    client = _client(world.qa)
    body = client.get(f"/api/v1/protocols/{locked.pk}/").json()
    assert body["name"] == "Locked" and body["version"] == 1 and body["status"] == "locked"
    assert body["sha256"] == protocol_hash(locked.document) == locked.sha256
    assert body["locked_at"] is not None and body["created_at"]
    drafted = client.get(f"/api/v1/protocols/{draft.pk}/").json()
    assert (drafted["status"], drafted["sha256"], drafted["locked_at"]) == ("draft", None, None)


def test_a_grant_to_any_protocol_shows_the_vendor_every_locked_one(world, protocols):
    """Vendor B may be validated under any locked protocol once a grant to it names none; a
    draft stays hidden (a run locks what it uses, and no grant named it)."""
    DatasetGrant.objects.create(
        dataset_version=DatasetVersionFactory.create(
            dataset=Dataset.objects.create(partner=world.partner_b, name="Knee"),
            created_by=world.other_steward,
        ),
        vendor=world.vendor_b,
        protocol=None,
        granted_by=world.other_steward,
    )
    client = _client(world.other_vendor_user)
    ids = {row["id"] for row in client.get("/api/v1/protocols/").json()["results"]}
    assert ids == {protocols[k].pk for k in ("granted", "ran", "locked")}
    assert client.get(f"/api/v1/protocols/{protocols['draft'].pk}/").status_code == 404
    grant = DatasetGrant.objects.get(vendor=world.vendor_b)
    grant.revoked_at, grant.revoked_by = "2026-12-02T00:00:00Z", world.other_steward
    grant.save()
    assert client.get("/api/v1/protocols/").json()["results"] == []


def test_a_grant_to_any_vendor_shows_no_protocol_to_someone_without_an_organisation(
    world, protocols
):
    DatasetGrant.objects.filter(protocol=protocols["granted"]).update(vendor=None)
    assert {
        row["id"]
        for row in _client(world.other_vendor_user).get("/api/v1/protocols/").json()["results"]
    } == {protocols["granted"].pk}
    client = _client(UserFactory.create())
    assert client.get("/api/v1/protocols/").json()["results"] == []
    assert client.get(f"/api/v1/protocols/{protocols['granted'].pk}/").status_code == 404


def test_anonymous_reads_no_protocol(protocols):
    assert APIClient().get("/api/v1/protocols/").status_code == 401
    assert APIClient().get(f"/api/v1/protocols/{protocols['locked'].pk}/").status_code == 401


# --- writing, as the validation team ------------------------------------------------------------


def test_the_team_writes_a_protocol_and_its_next_version_and_locks_it(world):
    reviewer = _client(world.reviewer)
    created = reviewer.post(
        "/api/v1/protocols/", {"name": "Chest v", "document": protocol_document()}, format="json"
    )
    assert created.status_code == 201, created.json()
    first = created.json()
    assert (first["name"], first["version"], first["status"]) == ("Chest v", 1, "draft")
    assert first["document"] == {**DEFAULTS, **protocol_document()}  # stored complete
    [event] = _events(AuditAction.PROTOCOL_CREATED)
    assert event.actor == world.reviewer and event.target_id == str(first["id"])
    assert event.payload == {"name": "Chest v", "version": 1}

    # The next version of a draft, by QA: the same name, the next number, still a draft.
    second = _client(world.qa).post(
        f"/api/v1/protocols/{first['id']}/versions/",
        {"document": protocol_document(min_cell_size=20)},
        format="json",
    )
    assert second.status_code == 201, second.json()
    assert (second.json()["name"], second.json()["version"]) == ("Chest v", 2)
    assert second.json()["document"]["min_cell_size"] == 20
    assert _events(AuditAction.PROTOCOL_CREATED)[-1].actor == world.qa

    locked = reviewer.post(f"/api/v1/protocols/{second.json()['id']}/lock/")
    assert locked.status_code == 200, locked.json()
    assert locked.json()["status"] == "locked"
    stored = Protocol.objects.get(pk=second.json()["id"])
    assert locked.json()["sha256"] == stored.sha256 == protocol_hash(stored.document)
    [lock_event] = _events(AuditAction.PROTOCOL_LOCKED)
    assert lock_event.actor == world.reviewer and lock_event.payload == {"sha256": stored.sha256}

    again = reviewer.post(f"/api/v1/protocols/{stored.pk}/lock/")  # idempotent
    assert again.status_code == 200 and again.json()["sha256"] == stored.sha256
    assert len(_events(AuditAction.PROTOCOL_LOCKED)) == 1

    # From the locked version 2 and from the older draft alike, the next is version 3, then 4.
    third = reviewer.post(
        f"/api/v1/protocols/{stored.pk}/versions/",
        {"document": protocol_document()},
        format="json",
    )
    fourth = reviewer.post(
        f"/api/v1/protocols/{first['id']}/versions/",
        {"document": protocol_document()},
        format="json",
    )
    assert (third.json()["version"], fourth.json()["version"]) == (3, 4)
    assert third.json()["status"] == fourth.json()["status"] == "draft"
    assert Protocol.objects.get(pk=stored.pk).is_locked and Protocol.objects.count() == 4


def test_every_problem_of_a_document_is_reported_at_its_path(world):
    document = protocol_document(primary_endpoint="f1", calibration={"bins": 40}, colour="red")
    document["acceptance_criteria"][0]["metric"] = "youden"
    del document["min_cell_size"]
    document["bootstrap"] = {"replicates": 100}
    document["subgroups"] = [{"attribute": "age", "bins": [40]}]
    response = _client(world.reviewer).post(
        "/api/v1/protocols/", {"name": "Bad", "document": document}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "The protocol document is invalid (7 problem(s))."
    assert sorted(_paths(body)) == sorted(
        [
            "document.colour",
            "document.min_cell_size",
            "document.acceptance_criteria[0].metric",
            "document.bootstrap.seed",
            "document.calibration.bins",
            "document.primary_endpoint",
            "document.subgroups[0].bins",
        ]
    )
    problems = {e["path"]: e["detail"] for e in body["errors"]}
    assert "'youden' is not one of" in problems["document.acceptance_criteria[0].metric"]
    assert "at most 20 calibration bins" in problems["document.calibration.bins"]
    assert not Protocol.objects.exists()
    assert not _events(AuditAction.PROTOCOL_CREATED)


def test_the_consistency_checks_are_reported_at_their_paths_on_a_new_version(world):
    base = protocol_create(actor=world.reviewer, name="P", document=protocol_document())
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
    response = _client(world.reviewer).post(
        f"/api/v1/protocols/{base.pk}/versions/", {"document": document}, format="json"
    )
    assert response.status_code == 400
    assert _paths(response.json()) == [
        "document.subgroups[0].bins",
        "document.subgroups[1].attribute",
        "document.fairness_criteria[0].attribute",
    ]
    assert Protocol.objects.count() == 1


def test_performance_goals_are_checked_by_the_api_at_their_paths(world):
    document = protocol_document(
        performance_goals=[{"metric": "auc", "goal": 1.2}, {"metric": "auc", "goal": 0.8}]
    )
    response = _client(world.reviewer).post(
        "/api/v1/protocols/", {"name": "Goals", "document": document}, format="json"
    )
    assert response.status_code == 400
    assert _paths(response.json()) == ["document.performance_goals[0].goal"]
    document["performance_goals"][0]["goal"] = 0.75  # now only the consistency check
    response = _client(world.reviewer).post(
        "/api/v1/protocols/", {"name": "Goals", "document": document}, format="json"
    )
    assert _paths(response.json()) == ["document.performance_goals[1].metric"]
    del document["performance_goals"][1]
    response = _client(world.reviewer).post(
        "/api/v1/protocols/", {"name": "Goals", "document": document}, format="json"
    )
    assert response.status_code == 201
    assert Protocol.objects.get().document["performance_goals"] == [{"metric": "auc", "goal": 0.75}]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"name": "X", "document": ["not", "an", "object"]}, "document"),
        ({"name": "X", "document": "{}"}, "document"),
    ],
)
def test_a_document_that_is_no_object_is_a_problem_of_the_whole_document(world, body, path):
    response = _client(world.reviewer).post("/api/v1/protocols/", body, format="json")
    assert response.status_code == 400
    assert _paths(response.json()) == [path]


def test_a_nul_character_is_refused_at_its_path_not_stored(world):
    """SQLite would store it; PostgreSQL's jsonb cannot (the integration tier runs this there)."""
    document = protocol_document(subgroups=[{"attribute": "a\x00b"}])
    response = _client(world.reviewer).post(
        "/api/v1/protocols/", {"name": "N", "document": document}, format="json"
    )
    assert response.status_code == 400
    assert _paths(response.json()) == ["document.subgroups[0].attribute"]
    assert not Protocol.objects.exists()
    # An unknown key holding one: its problem quotes it back, and the refusal's audit event
    # stores that answer (it was a 500 on PostgreSQL before the NUL was written out).
    unknown = _client(world.reviewer).post(
        "/api/v1/protocols/",
        {"name": "N", "document": protocol_document(**{"x\x00": 1})},
        format="json",
    )
    assert unknown.status_code == 400
    assert _paths(unknown.json()) == ["document.x\\u0000"]
    [refusal] = _events(AuditAction.REQUEST_REFUSED)[-1:]
    assert refusal.payload["answer"] == unknown.json()


def test_a_request_without_a_name_or_a_document_is_refused(world):
    client = _client(world.reviewer)
    for body in ({"document": protocol_document()}, {"name": "X"}, {"name": "", "document": {}}):
        assert client.post("/api/v1/protocols/", body, format="json").status_code == 400
    form = client.post("/api/v1/protocols/", {"name": "X", "document": "{}"})  # multipart
    assert form.status_code == 415  # a document is JSON, never a form field
    assert not Protocol.objects.exists()


def test_writing_an_id_that_does_not_exist_is_a_404_for_the_team(world):
    client = _client(world.reviewer)
    assert client.post(f"/api/v1/protocols/{MISSING}/lock/").status_code == 404
    versioned = client.post(
        f"/api/v1/protocols/{MISSING}/versions/", {"document": protocol_document()}, format="json"
    )
    assert versioned.status_code == 404


# --- every other role's write is refused and audited ------------------------------------------


@pytest.mark.parametrize("role", NOT_TEAM)
def test_every_write_by_another_role_is_refused_and_audited(world, protocols, role):
    user = getattr(world, role)
    client = _client(user)
    draft = protocols["draft"]
    writes = [
        ("/api/v1/protocols/", {"name": "Mine", "document": protocol_document()}),
        (f"/api/v1/protocols/{draft.pk}/versions/", {"document": protocol_document()}),
        (f"/api/v1/protocols/{draft.pk}/lock/", {}),
        (f"/api/v1/protocols/{protocols['locked'].pk}/lock/", {}),  # even a no-op
        (f"/api/v1/protocols/{MISSING}/lock/", {}),  # no lookup before the refusal
    ]
    before = Protocol.objects.count()
    for path, body in writes:
        response = client.post(path, body, format="json")
        assert response.status_code == 403, (path, response.content)
        assert response.json()["detail"] == "Only the validation team writes protocols."
    assert Protocol.objects.count() == before
    assert not Protocol.objects.get(pk=draft.pk).is_locked
    refusals = [e for e in _events(AuditAction.REQUEST_REFUSED) if e.actor == user]
    assert [(e.payload["method"], e.payload["path"], e.payload["status"]) for e in refusals] == [
        ("POST", path, 403) for path, _body in writes
    ]
    assert all(e.target_id == "" for e in refusals)  # the probed id is named by no event
    assert len(_events(AuditAction.PROTOCOL_CREATED)) == 4  # the fixture's only
