"""Role fixtures: a small world with two of each organisation, so every test can ask both
'may I see mine?' and 'can I see theirs?'."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.factories import OrganisationFactory, member
from validation.models import Organisation, Role
from validation.runner.client import ModelRunner

# `make test-fast` (BLINDSPOT_TEST_FAST=1) deselects the tests marked `sandbox`; there, a test
# that starts a sandboxed model runner without the marker fails, so the marks stay complete.
FAST_ENV = "BLINDSPOT_TEST_FAST"
_running: dict[str, pytest.Item] = {}


def pytest_runtest_setup(item: pytest.Item) -> None:
    _running["item"] = item  # before its fixtures, module- and session-scoped ones included


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(FAST_ENV) != "1":
        return
    start = ModelRunner.start

    def start_where_marked(self: ModelRunner) -> ModelRunner:
        item = _running.get("item")
        if item is None or not item.get_closest_marker("sandbox"):
            name = item.nodeid if item is not None else "a test"
            pytest.fail(
                f"{name} starts a sandboxed model runner: mark it @pytest.mark.sandbox "
                "(make test-fast runs none)",
                pytrace=False,
            )
        return start(self)

    ModelRunner.start = start_where_marked  # type: ignore[method-assign]  # this process only


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    # Real hashing costs ~0.3 s a user; the password checks themselves are still real.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SEQUESTERED_ROOT = tmp_path / "sequestered"
    settings.RUNNER_CACHE_ROOT = tmp_path / "runner-cache"
    settings.PACKAGE_STAGING_ROOT = tmp_path / "package-staging"
    settings.SIGNING_KEY_PATH = tmp_path / "keys" / "service.pem"
    from reports.signing import _private_key

    _private_key.cache_clear()
    yield
    _private_key.cache_clear()
    # Warm runners are per process; one test's must not serve the next (its files are gone).
    from validation.runner_pool import runners_close_all

    runners_close_all()


@pytest.fixture
def world(db):
    vendor_a = OrganisationFactory.create(name="Vendor A", kind=Organisation.Kind.VENDOR)
    vendor_b = OrganisationFactory.create(name="Vendor B", kind=Organisation.Kind.VENDOR)
    partner_a = OrganisationFactory.create(name="Partner A", kind=Organisation.Kind.PARTNER)
    partner_b = OrganisationFactory.create(name="Partner B", kind=Organisation.Kind.PARTNER)
    validator = OrganisationFactory.create(name="Validator", kind=Organisation.Kind.VALIDATOR)
    return SimpleNamespace(
        vendor_a=vendor_a,
        vendor_b=vendor_b,
        partner_a=partner_a,
        partner_b=partner_b,
        validator=validator,
        vendor_user=member(vendor_a, Role.VENDOR_MEMBER, username="vendor_a_user"),
        other_vendor_user=member(vendor_b, Role.VENDOR_MEMBER, username="vendor_b_user"),
        steward=member(partner_a, Role.PARTNER_STEWARD, username="steward_a"),
        other_steward=member(partner_b, Role.PARTNER_STEWARD, username="steward_b"),
        reviewer=member(
            validator, Role.REVIEWER, username="reviewer", first_name="Rita", last_name="Reviewer"
        ),
        qa=member(
            validator, Role.QA_APPROVER, username="qa", first_name="Quinn", last_name="Approver"
        ),
        auditor=member(validator, Role.AUDITOR, username="auditor"),
    )


@pytest.fixture(scope="session")
def package_file(tmp_path_factory) -> Path:
    """A real package (untrained TinyLesionNet, torch.export) built by the vendor-side builder."""
    import torch

    from validation.packaging import build_package, default_manifest
    from validation.synthetic.reference_model import TinyLesionNet

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("pkg") / "model.tar.gz"
    return build_package(
        model=TinyLesionNet(),
        example_input=torch.randn(2, 1, 64, 64),
        manifest=default_manifest(name="Finder", version="1.0", gradcam_target_layer="block3"),
        out_path=out,
    )


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    """16 real synthetic DICOM cases (8 positive) with their manifest."""
    from validation.synthetic.cohort import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("cohort"), cases=16, seed=3, prevalence=0.5)


@pytest.hookimpl(optionalhook=True)  # xdist's hook: absent under `-p no:xdist`
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """xdist hands out whole files (`--dist loadfile`), except the browser journeys, which go
    to one worker together: one browser at a time on the machine (tests/browser/conftest.py's
    lock), so a second worker would only wait for the lock."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class BrowsersTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(BROWSER_TESTS):
                return BROWSER_TESTS
            return super()._split_scope(nodeid)

    return BrowsersTogether(config, log)


BROWSER_TESTS = "tests/browser/"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first, so that across xdist workers (`--dist loadfile --no-loadscope-reorder`:
    files handed out in this order as workers free up) no long file starts last while the other
    workers sit idle: the files with a slow test (the demo subprocess, the crash test), then
    those that start sandboxed runners, then the other files that use no database (report
    renders among them), then the rest in the order pytest-django gives them, transactional
    tests last. No migration writes data, so a transactional test's flush leaves the database
    as any later test expects it."""

    def uses_db(item: pytest.Item) -> bool:
        names = getattr(item, "fixturenames", ())
        return bool(item.get_closest_marker("django_db")) or bool(
            {"db", "transactional_db", "world"} & set(names)
        )

    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)
    position = {path: i for i, path in enumerate(files)}

    def rank(path: str) -> tuple[int, int]:
        group = files[path]
        if any(i.get_closest_marker("slow") for i in group):
            return (0, position[path])
        if any(i.get_closest_marker("sandbox") for i in group):
            return (1, position[path])
        return (2 if not any(map(uses_db, group)) else 3, position[path])

    items[:] = [item for path in sorted(files, key=rank) for item in files[path]]


@pytest.fixture
def broker():
    """A real Redis for tests with worker processes (PostgreSQL tier only: the workers need a
    database they share with the test), flushed; skips with the reason when there is none."""
    from django.db import connection

    from tests.support.worker_fleet import redis_url

    if connection.vendor != "postgresql":
        pytest.skip("worker processes need a shared database: runs in the PostgreSQL tier")
    try:
        url, proc = redis_url()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    import redis

    redis.Redis.from_url(url).flushdb()
    yield url
    if proc is not None:
        proc.kill()


@pytest.fixture
def dispatch_via(monkeypatch):
    """`dispatch_via(url[, transport_options])`: this process sends tasks to that broker instead
    of running them eagerly, as the web process does in production; undone after the test,
    kombu's process-wide producer pools included (a closed pool left registered fails the next
    eager `apply_async` with "Acquire on closed pool")."""
    from kombu import pools

    from config.celery import app

    def drop_connections() -> None:
        # The private slots, read without creating a pool; celery-types does not declare them.
        for pool in (app.amqp._producer_pool, app._pool):  # type: ignore[attr-defined]  # private, untyped
            if pool is not None:
                pool.force_close_all()
        app.amqp._producer_pool = app._pool = None  # type: ignore[attr-defined]  # private, untyped

    def switch(url: str, transport_options: dict | None = None) -> None:
        drop_connections()  # made for the in-memory transport of eager mode
        monkeypatch.setitem(app.conf, "task_always_eager", False)
        monkeypatch.setitem(app.conf, "broker_url", url)
        if transport_options is not None:  # a filesystem broker's folders (config/broker.py)
            monkeypatch.setitem(app.conf, "broker_transport_options", transport_options)

    yield switch
    drop_connections()
    pools.reset()
