"""Thin Celery entry points of the reports app (stable names in `validation.task_names`)."""

from config.celery import report_task
from reports import services
from validation import task_names


@report_task(name=task_names.REPORT_ISSUE)
def report_issue(*, report_id: int) -> None:
    services.report_issue(report_id=report_id)


@report_task(name=task_names.REPORT_PAGES)
def report_pages_make(*, report_id: int) -> None:
    services.report_pages_make(report_id=report_id)
