"""`make serve` (scripts/serve.sh) on the embedded default: real Celery worker processes on kombu's
filesystem transport, sharing a SQLite file with this process. What a service queues here is
done by those workers, not by the caller; and TERM leaves no process behind.

The workers are started by the script itself (`--worker-only`), on a var/ folder of the test's
own; this process submits through the services on the same database file and sends its tasks to
the same broker folders, as the web process of `make serve` does."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connections

from config.broker import filesystem_transport_options
from tests.factories import OrganisationFactory, member
from validation.management.commands.demo import PEOPLE
from validation.models import DatasetImport, ModelPackage, Organisation, Role

ROOT = Path(__file__).resolve().parent.parent
SERVE = ROOT / "scripts" / "serve.sh"
HOST = socket.gethostname()


@contextmanager
def _database(path: Path, blocker) -> Iterator[None]:
    """This process's default connection on the SQLite file `path` (the one the workers use)
    instead of pytest-django's in-memory test database, which no other process can open."""
    if connections["default"].vendor != "sqlite":
        pytest.skip("make serve's embedded default is SQLite")
    previous = connections["default"]
    shared = previous.copy()
    shared.settings_dict["NAME"] = str(path)
    connections["default"] = shared
    try:
        with blocker.unblock():
            yield
    finally:
        shared.close()
        connections["default"] = previous


def _serve_env(var: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "BLINDSPOT_VAR_DIR": str(var), "BLINDSPOT_SERVE_STOP_S": "20", **extra}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "BLINDSPOT_BROKER_DIR"):
        env.pop(name, None)  # the embedded default: SQLite and the broker under var/
    return env


class Served:
    """scripts/serve.sh in a process group of its own, its output in a file."""

    def __init__(self, var: Path, *args: str, **env: str) -> None:
        self.var = var
        self.out = var / "serve.out"
        var.mkdir(parents=True, exist_ok=True)
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(
                [str(SERVE), *args],
                cwd=ROOT,
                env=_serve_env(var, **env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}"
            for log in sorted((self.var / "log").glob("worker-*.log"))
        )

    def wait_for(self, predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = predicate()
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{what}: not within {timeout_s} s\n{self.output()}\n{self.logs()}")

    def worker_pids(self) -> dict[str, int]:
        return {
            pidfile.stem.removeprefix("worker-"): int(pidfile.read_text())
            for pidfile in (self.var / "run").glob("worker-*.pid")
        }

    def stop(self, timeout_s: float = 40) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:  # whatever a failure left: never an orphan after the suite
            for group in (self.proc.pid, *self.worker_pids().values()):
                try:
                    os.killpg(group, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _migrated_copy(template: Path, var: Path) -> Path:
    """A copy of the migrated database (SQLite's backup: WAL-safe) as `var`'s own."""
    var.mkdir(parents=True, exist_ok=True)
    target = var / "blindspot.sqlite3"
    with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)
    return target


@pytest.fixture(scope="module")
def migrated(tmp_path_factory, django_db_blocker) -> Path:
    path = tmp_path_factory.mktemp("serve-template") / "blindspot.sqlite3"
    with _database(path, django_db_blocker):
        call_command("migrate", verbosity=0)
    return path


@pytest.fixture(scope="module")
def workers(tmp_path_factory, migrated) -> Iterator[Served]:
    """`scripts/serve.sh --worker-only` on a var/ of its own, ready to take tasks."""
    var = tmp_path_factory.mktemp("serve") / "var"
    _migrated_copy(migrated, var)
    served = Served(
        var,
        "--worker-only",
        BLINDSPOT_RUNNER_THREADS="1",
        BLINDSPOT_DATASET_IMPORT_WORKERS="1",
    )
    try:
        served.wait_for(lambda: "Celery workers ready" in served.output(), 90, "workers ready")
        yield served
    finally:
        served.stop()


@pytest.fixture
def on_workers(workers, settings, dispatch_via, django_db_blocker) -> Iterator[Served]:
    """This process as the web process of `make serve`: the workers' database file and folders
    (their defaults under var/), and its tasks sent to their broker instead of run eagerly."""
    var = workers.var
    settings.MEDIA_ROOT = var / "media"
    settings.SEQUESTERED_ROOT = var / "sequestered"
    settings.RUNNER_CACHE_ROOT = var / "runner-cache"
    settings.PACKAGE_STAGING_ROOT = var / "package-staging"
    settings.SIGNING_KEY_PATH = var / "keys" / "service-ed25519.pem"
    dispatch_via("filesystem://localhost/", filesystem_transport_options(var / "broker"))
    with _database(var / "blindspot.sqlite3", django_db_blocker):
        yield workers


def _zip(folder: Path) -> SimpleUploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder))
    return SimpleUploadedFile("cohort.zip", buffer.getvalue())


def test_a_dataset_import_runs_on_the_cpu_worker_not_in_the_caller(on_workers, cohort):
    from validation.services.dataset_imports import dataset_import_request
    from validation.services.datasets import dataset_create

    partner = OrganisationFactory.create(kind=Organisation.Kind.PARTNER)
    steward = member(partner, Role.PARTNER_STEWARD)
    dataset = dataset_create(actor=steward, partner=partner, name="Chest")
    job = dataset_import_request(actor=steward, dataset=dataset, upload=_zip(cohort.parent))

    def finished():
        job.refresh_from_db()
        return job.finished_at is not None

    on_workers.wait_for(finished, 60, "the import to finish")
    assert job.status == DatasetImport.Status.DONE, (job.message, job.errors)
    assert job.worker == f"cpu@{HOST}"  # the claiming task's hostname; run eagerly: eager@...
    assert job.version is not None and job.version.cases.count() == 16
    log_file = on_workers.var / "log" / "worker-cpu.log"
    succeeded = re.compile(r"Task validation\.tasks\.dataset_import\[.+\] succeeded")
    # The row is committed inside the task; the worker logs "succeeded" just after it returns.
    on_workers.wait_for(lambda: succeeded.search(log_file.read_text()), 30, "the task's log line")


@pytest.mark.sandbox
def test_a_package_is_smoke_tested_on_the_gpu_worker_not_in_the_caller(on_workers, package_file):
    from validation.services.packages import package_submit

    vendor = OrganisationFactory.create(kind=Organisation.Kind.VENDOR)
    with open(package_file, "rb") as upload:
        package = package_submit(actor=member(vendor, Role.VENDOR_MEMBER), upload=upload)
    # Run eagerly, the smoke test would have decided before the call returned; the worker needs
    # seconds (a sandboxed process that loads torch and the model).
    package.refresh_from_db()
    assert package.status == ModelPackage.Status.TESTING

    def decided():
        package.refresh_from_db()
        return package.status != ModelPackage.Status.TESTING

    on_workers.wait_for(decided, 120, "the smoke test to decide")
    assert package.status == ModelPackage.Status.SUBMITTED, package.refusal_detail
    assert package.smoke_attempts == 1 and package.smoke_load_seconds
    log = (on_workers.var / "log" / "worker-gpu0.log").read_text()
    assert re.search(r"Task validation\.tasks\.package_smoke_test\[.+\] succeeded", log), log


@pytest.mark.slow  # the web server's start (system checks) and both warm shutdowns: ~15 s
def test_serve_answers_and_term_leaves_no_process_behind(tmp_path, migrated):
    var = tmp_path / "var"
    _migrated_copy(migrated, var)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = Served(var, PORT=str(port))
    login = f"http://127.0.0.1:{port}/admin/login/"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(login, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        served.wait_for(answers, 90, f"{login} to answer 200")
        pids = served.worker_pids()
        assert set(pids) == {"cpu", "gpu0"} and all(map(_alive, pids.values()))
        output = served.output()
        for username, *_ in PEOPLE:  # whom to sign in as, for each role
            assert re.search(rf"^  {username} ", output, re.M), output
    finally:
        status = served.stop()
    assert status == 128 + signal.SIGTERM, served.output()
    assert not any(map(_alive, pids.values())), pids
    assert not list((var / "run").glob("*.pid"))  # each worker removed its own: a clean exit
    assert not answers()
    assert "stopped the workers and the web server" in served.output()


def test_a_second_serve_on_the_same_var_is_refused(workers):
    second = subprocess.run(
        [str(SERVE), "--worker-only"],
        cwd=ROOT,
        env=_serve_env(workers.var),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1
    assert "of another serve on" in second.stderr and "is running" in second.stderr
    assert all(map(_alive, workers.worker_pids().values()))  # the first one's are untouched
