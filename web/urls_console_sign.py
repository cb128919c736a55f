"""The review console's sign screens (issue 16): signing a report (its page images, the
signature form, the live status, corrections) and the audit trail."""

from django.urls import path

from web.views import console_audit, console_sign

urlpatterns = [
    path(
        "console/reports/<int:pk>/sign/", console_sign.report_sign_page, name="console-report-sign"
    ),
    path(
        "console/reports/<int:pk>/sign/submit/",
        console_sign.report_sign_submit,
        name="console-report-sign-submit",
    ),
    path(
        "console/reports/<int:pk>/sign/status/",
        console_sign.report_sign_status,
        name="console-report-sign-status",
    ),
    path(
        "console/reports/<int:pk>/correct/",
        console_sign.report_correct_submit,
        name="console-report-correct",
    ),
    path(
        "console/reports/<int:pk>/pages/",
        console_sign.report_pages_fragment,
        name="console-report-pages",
    ),
    path(
        "console/reports/<int:pk>/pages/<int:number>.png",
        console_sign.report_page_image,
        name="console-report-page",
    ),
    path("console/audit/", console_audit.audit_trail, name="console-audit"),
    path("console/audit.csv", console_audit.audit_csv, name="console-audit-csv"),
]
