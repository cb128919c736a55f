"""The console's audit trail without a browser: filters (actor, action, target, time), newest
first and paginated, the chain's status (verified, cached for a minute, broken at the first
altered event), and the CSV export with the same filter and the formula guard."""

import csv
import io
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from audit.services import audit_record
from tests.support.audit_tamper import tamper_payload
from tests.support.people import signed_in

pytestmark = pytest.mark.django_db

URL = reverse("web:console-audit")
CSV_URL = reverse("web:console-audit-csv")


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def record(actor, action, target=None, payload=None) -> AuditEvent:
    with transaction.atomic():
        return audit_record(actor=actor, action=action, target=target, payload=payload or {})


def streamed(response) -> str:
    return b"".join(response.streaming_content).decode()


def ids_on(response) -> list[int]:
    return [row["event"].pk for row in response.context["rows"]]


def test_the_trail_lists_events_newest_first_with_their_details(world):
    first = record(world.reviewer, AuditAction.PROTOCOL_CREATED, world.validator, {"name": "P1"})
    second = record(world.qa, AuditAction.PROTOCOL_LOCKED, world.validator, {"sha256": "ab" * 32})
    response = signed_in(world.auditor).get(URL)
    assert response.status_code == 200
    shown = ids_on(response)
    assert shown.index(second.pk) < shown.index(first.pk)
    html = response.content.decode()
    assert "protocol.locked" in html
    assert "Quinn Approver &lt;qa&gt;" in html
    assert second.hash[:12] in html
    assert "&quot;name&quot;: &quot;P1&quot;" in html  # the payload, pretty, in <details>
    assert "<details" in html
    assert response.context["section"] == "console-audit"


def test_filters_by_actor_action_target_and_time(world):
    mine = record(world.reviewer, AuditAction.PROTOCOL_CREATED, world.vendor_a)
    theirs = record(world.qa, AuditAction.PROTOCOL_CREATED, world.vendor_b)
    locked = record(world.reviewer, AuditAction.PROTOCOL_LOCKED, world.vendor_b)
    client = signed_in(world.reviewer)

    by_actor = ids_on(client.get(URL, {"actor": "qa"}))
    assert theirs.pk in by_actor and mine.pk not in by_actor and locked.pk not in by_actor
    by_name = ids_on(client.get(URL, {"actor": "rita"}))
    assert {mine.pk, locked.pk} <= set(by_name) and theirs.pk not in by_name

    by_action = ids_on(client.get(URL, {"action": AuditAction.PROTOCOL_LOCKED}))
    assert by_action == [locked.pk]

    label = world.vendor_b._meta.label
    by_target = ids_on(client.get(URL, {"target_type": label, "target_id": world.vendor_b.pk}))
    assert set(by_target) >= {theirs.pk, locked.pk} and mine.pk not in by_target

    later = (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert ids_on(client.get(URL, {"since": later})) == []
    earlier = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert locked.pk in ids_on(client.get(URL, {"since": earlier, "until": later}))


def test_an_invalid_filter_is_refused_and_selects_nothing(world):
    record(world.reviewer, AuditAction.PROTOCOL_CREATED)
    response = signed_in(world.auditor).get(
        URL, {"since": "2026-02-02T10:00", "until": "2026-01-01T10:00", "action": "nonsense"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "The end of the range comes after its start." in html
    assert "Select a valid choice" in html
    assert ids_on(response) == []


def test_the_trail_paginates_25_a_page_and_keeps_the_filter(world):
    for i in range(30):
        record(world.reviewer, AuditAction.PROTOCOL_CREATED, payload={"i": i})
    client = signed_in(world.auditor)
    page1 = client.get(URL, {"action": AuditAction.PROTOCOL_CREATED})
    assert len(ids_on(page1)) == 25
    assert "action=protocol.created&amp;page=2" in page1.content.decode()
    page2 = client.get(URL, {"action": AuditAction.PROTOCOL_CREATED, "page": "2"})
    assert len(ids_on(page2)) == 5
    assert max(ids_on(page2)) < min(ids_on(page1))


def test_the_page_is_a_fixed_number_of_queries(world, django_assert_max_num_queries):
    for i in range(30):
        record(world.reviewer, AuditAction.PROTOCOL_CREATED, world.vendor_a, {"i": i})
    client = signed_in(world.auditor)
    client.get(URL)  # the session and the chain's cache are warm
    with django_assert_max_num_queries(12):
        assert client.get(URL).status_code == 200


def test_the_chain_shows_verified_with_the_count_and_time(world):
    record(world.reviewer, AuditAction.PROTOCOL_CREATED)
    response = signed_in(world.auditor).get(URL)
    chain = response.context["chain"]
    assert chain.report.intact
    assert chain.report.events_checked == AuditEvent.objects.count()
    html = response.content.decode()
    assert "verified" in html and f"{chain.report.events_checked} event" in html
    assert "Checked" in html and "Verify now" in html


def test_a_tampered_event_shows_the_first_broken_link(world):
    events = [
        record(world.reviewer, AuditAction.PROTOCOL_CREATED, payload={"i": i}) for i in range(3)
    ]
    client = signed_in(world.auditor)
    assert client.get(URL).context["chain"].report.intact  # walked, then kept for a minute

    tamper_payload(events[1].pk, '{"i": 99}')
    assert client.get(URL).context["chain"].cached  # a minute's grace, said on the page
    response = client.get(URL, {"verify": "now"})
    chain = response.context["chain"]
    assert not chain.report.intact
    assert chain.report.broken_event_id == events[1].pk
    html = response.content.decode()
    assert f"broken at event #{events[1].pk}" in html
    assert "payload does not match payload_sha256" in html
    assert "broken link" in html  # the row itself is marked


def test_a_new_event_starts_a_new_walk(world):
    record(world.reviewer, AuditAction.PROTOCOL_CREATED)
    client = signed_in(world.auditor)
    client.get(URL)
    assert client.get(URL).context["chain"].cached
    record(world.reviewer, AuditAction.PROTOCOL_CREATED)
    assert not client.get(URL).context["chain"].cached


def test_the_csv_has_the_filtered_events_and_guards_formulas(world):
    hit = record(world.reviewer, AuditAction.PROTOCOL_LOCKED, world.vendor_a, {"note": "x"})
    record(world.reviewer, AuditAction.PROTOCOL_CREATED)
    world.reviewer.first_name = "=HYPERLINK(1)"
    world.reviewer.save()
    formula = record(world.reviewer, AuditAction.PROTOCOL_LOCKED)
    response = signed_in(world.qa).get(CSV_URL, {"action": AuditAction.PROTOCOL_LOCKED})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(streamed(response))))
    assert rows[0][:4] == ["id", "at", "actor", "action"]
    assert [int(r[0]) for r in rows[1:]] == [formula.pk, hit.pk]
    by_id = {int(r[0]): r for r in rows[1:]}
    assert by_id[hit.pk][4:6] == [world.vendor_a._meta.label, str(world.vendor_a.pk)]
    assert by_id[hit.pk][6] == '{"note": "x"}'
    assert by_id[hit.pk][9] == hit.hash
    assert by_id[formula.pk][2].startswith("'=")


def test_the_csv_refuses_an_invalid_filter(world):
    response = signed_in(world.auditor).get(CSV_URL, {"since": "not a date"})
    assert response.status_code == 400
    assert "Enter a valid date/time." in response.content.decode()


def test_the_usage_csv_still_guards_formulas_through_the_shared_module():
    from web.csv_export import csv_cell

    assert csv_cell("=1+1") == "'=1+1"
    assert csv_cell("-2") == "'-2"
    assert csv_cell("plain") == "plain"
    assert csv_cell(None) == ""
