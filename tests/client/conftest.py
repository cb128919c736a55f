"""The `blindspot` command run as a vendor runs it: a subprocess of the installed console
script, against pytest-django's live server (transactional database); smoke tests and runs go
to a real Celery worker thread (tests/browser/conftest.py's)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache

from tests.browser.conftest import _record_wiped_after, celery_worker_thread  # noqa: F401

BLINDSPOT = str(Path(sys.executable).with_name("blindspot"))
# The client in this checkout, ahead of the installed one (a worktree shares a virtualenv whose
# editable install points at another checkout).
CLIENT_SOURCE = str(Path(__file__).resolve().parents[2] / "clients" / "python" / "src")


@pytest.fixture(autouse=True)
def _token_rate_unlimited(settings):
    settings.API_TOKEN_RATE = "10000/min"
    cache.clear()


@pytest.fixture
def cli(live_server, tmp_path, _record_wiped_after):  # noqa: F811
    """`cli(*args, token=..., input=...)`: the command's CompletedProcess (text), with the live
    server as BLINDSPOT_URL and a config folder of its own."""
    config = tmp_path / "blindspot-config"

    def run(*args: str, token: str | None = None, input: str | None = None, timeout: int = 300):
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(tmp_path),
            "BLINDSPOT_URL": live_server.url,
            "BLINDSPOT_CONFIG_DIR": str(config),
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": CLIENT_SOURCE,
        }
        if token:
            env["BLINDSPOT_TOKEN"] = token
        return subprocess.run(
            [BLINDSPOT, *args],
            env=env,
            cwd=tmp_path,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    run.config = config  # type: ignore[attr-defined]
    return run
