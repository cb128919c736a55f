"""The review console's work queue: packages awaiting review, runs needing attention (failed,
stalled, with failing cases) and reports awaiting a signature, with counts kept live by a
fragment polled every 10 s (it never reaches a final state)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from reports import selectors as report_selectors
from reports.services import signatures_missing
from validation import selectors
from validation.models import Role
from web.access import role_required
from web.views.runs import run_badge

#: Rows shown per list in the queue; the counts say how many there are in all.
SHOWN = 10
MEANING_WORDS = {"reviewed": "review (a reviewer)", "approved": "approval (a QA approver)"}

team_or_auditor = role_required(Role.REVIEWER, Role.QA_APPROVER, Role.AUDITOR)


def _queue_context() -> dict:
    packages = selectors.packages_awaiting_review()
    failed = selectors.runs_failed()
    stalled = selectors.runs_stalled()
    failing = selectors.runs_with_failing_cases()
    reports = list(report_selectors.reports_awaiting_signature())
    report_rows = []
    for report in reports:
        missing = signatures_missing(
            report.required_signatures, {s.meaning for s in report.signatures.all()}
        )
        report_rows.append(
            {
                "report": report,
                "next": MEANING_WORDS.get(missing[0], missing[0]) if missing else "",
                "given": [s for s in report.signatures.all()],
            }
        )
    return {
        "counts": {
            "packages": packages.count(),
            "failed": failed.count(),
            "stalled": len(stalled),
            "failing": failing.count(),
            "reports": len(reports),
        },
        "packages": list(packages[:SHOWN]),
        "failed": [{"run": r, "badge": run_badge(r.status)} for r in failed[:SHOWN]],
        "stalled": [{"run": r, "badge": run_badge(r.status)} for r in stalled[:SHOWN]],
        "failing": [{"run": r, "badge": run_badge(r.status)} for r in failing[:SHOWN]],
        "reports": report_rows[:SHOWN],
        "shown": SHOWN,
        "stale_s": round(settings.WORKER_STALE_S),
    }


@team_or_auditor
def queue(request: HttpRequest) -> HttpResponse:
    context = {"title": "Work queue", "section": "console", **_queue_context()}
    return render(request, "web/console/work/queue.html", context)


@team_or_auditor
def queue_live(request: HttpRequest) -> HttpResponse:
    """The live part of the queue; polled for as long as the page is open and visible."""
    return render(request, "web/console/work/queue.html#live", _queue_context())
