"""Browser journeys: Playwright drives Debian's chromium (never `playwright install`) against
pytest-django's live server. One browser at a time on the machine: each test module launches
its own under a file lock, so xdist workers (and other checkouts) take turns."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from django.db import connection
from filelock import FileLock

from tests.support.browser import Guard

# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the live
# server's test code are then flagged as async-unsafe without this.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
BROWSER_LOCK = Path(tempfile.gettempdir()) / "blindspot-browser.lock"


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "tests/browser/" in item.nodeid.replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_type_launch_args():
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no {CHROMIUM}: the project's system packages install chromium")
    return {"executable_path": CHROMIUM}


@pytest.fixture(scope="module")
def browser(launch_browser):
    with FileLock(str(BROWSER_LOCK)):
        browser = launch_browser()
        yield browser
        browser.close()


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def guard(live_server, context):
    watch = Guard(live_server.url)
    watch.watch(context)
    yield watch
    watch.assert_clean()


@pytest.fixture
def _record_wiped_after(transactional_db):
    """A transactional test ends with a flush. PostgreSQL's TRUNCATE passes the append-only
    triggers; SQLite's DELETE does not, so there the triggers step aside for the wipe of the
    test database and come back exactly as they were."""
    yield
    if connection.vendor != "sqlite":
        return
    # Foreign keys off for the wipe: append-only tables reference each other (a signature its
    # report) and other rows point at them; the flush empties the rest right after.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, tbl_name, sql FROM sqlite_master "
            "WHERE type = 'trigger' AND name LIKE '%append_only%'"
        )
        triggers = cursor.fetchall()
        cursor.execute("PRAGMA foreign_keys = OFF")
        try:
            for name, _, _ in triggers:
                cursor.execute(f'DROP TRIGGER "{name}"')
            for table in sorted({t for _, t, _ in triggers}):
                cursor.execute(f'DELETE FROM "{table}"')
            for _, _, sql in triggers:
                cursor.execute(sql)
        finally:
            cursor.execute("PRAGMA foreign_keys = ON")


@pytest.fixture
def web(page, guard, _record_wiped_after):
    """A page in a guarded context, against the live server with a transactional database."""
    guard.watch_page(page)
    page.set_default_timeout(15_000)
    return page


@pytest.fixture
def celery_worker_thread(dispatch_via, _record_wiped_after):
    """A real Celery worker (solo pool) in a thread of this process on kombu's in-memory broker,
    consuming every queue: what the pages queue (smoke tests, imports, runs, report issuing)
    runs there, outside the web request, as under `make serve`, against the live server's test
    database (a worker process could not open SQLite's in-memory test database)."""
    from celery.contrib.testing.worker import start_worker

    from config.celery import QUEUES, app

    dispatch_via("memory://")
    with start_worker(
        app, pool="solo", queues=list(QUEUES), perform_ping_check=False, shutdown_timeout=30
    ) as worker:
        yield worker
