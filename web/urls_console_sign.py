"""The review console's sign screens (issue 16): signing a report (its page images, the
signature form, corrections) and the audit trail."""

from django.urls import path

from web.views import console_audit

urlpatterns = [
    path("console/audit/", console_audit.audit_trail, name="console-audit"),
    path("console/audit.csv", console_audit.audit_csv, name="console-audit-csv"),
]
