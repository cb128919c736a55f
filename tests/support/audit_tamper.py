"""Editing an audit row behind the service's back, as someone with database access could: the
append-only trigger dropped for one raw UPDATE, then put back."""

from django.db import connection

from audit.immutability import append_only_trigger_sql, drop_append_only_trigger_sql

TABLE = "audit_auditevent"


def tamper_payload(event_id: int, payload_json: str) -> None:
    vendor = connection.vendor
    with connection.cursor() as cursor:
        try:
            for sql in drop_append_only_trigger_sql(TABLE, vendor=vendor):
                cursor.execute(sql)
            cursor.execute(
                f"UPDATE {TABLE} SET payload = %s WHERE id = %s", [payload_json, event_id]
            )
        finally:
            for sql in append_only_trigger_sql(TABLE, vendor=vendor):
                cursor.execute(sql)
