"""docs/API.md's quickstart, run as a new user runs it: a server started like `make serve`
(scripts/serve.sh: runserver and real Celery workers) on a `manage.py demo` database in a var
folder of its own, on a free port named through BLINDSPOT_URL; then every fenced `sh` block of
the document, verbatim and in order, in one bash session, each required to succeed, ending in a
downloaded report that verifies."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from pathlib import Path

import pytest

from tests.test_serve import Served

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "API.md"
pytestmark = [pytest.mark.slow, pytest.mark.sandbox]


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", markdown, flags=re.S | re.M)


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(var: Path, *args: str) -> None:
    env = {**os.environ, "BLINDSPOT_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "config.settings"}
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "BLINDSPOT_BROKER_DIR"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/v1/signing-key/", timeout=2) as response:  # noqa: S310 (http, built here)
            return response.status == 200
    except OSError:
        return False


def test_the_documented_blocks_exist():
    blocks = shell_blocks(DOC.read_text())
    text = "\n".join(blocks)
    for command in ("login", "build", "check", "submit", "watch", "results", "download", "verify"):
        assert f" {command} " in text or f" {command}\n" in text, command


def test_the_quickstart_runs_verbatim_to_a_verified_report(tmp_path):
    var = tmp_path / "var"
    _manage(var, "migrate", "--noinput", "-v", "0")
    # The quickstart does not depend on how well the demo's own model learns: a small demo.
    _manage(var, "demo", "--cases", "60", "--training-cases", "200")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    served = Served(var, PORT=str(port))
    try:
        served.wait_for(lambda: _answers(url), 120, "the server answering")
        # The checkout's stand-in: what the commands read of it, and a folder they may write in.
        work = tmp_path / "checkout"
        work.mkdir()
        for part in (".venv", "clients"):
            (work / part).symlink_to(ROOT / part)
        blocks = shell_blocks(DOC.read_text())
        script = ["set -euo pipefail"]
        for number, block in enumerate(blocks, 1):
            script += [f"echo '>>> block {number}' >&2", block]
        script.append("echo '>>> all blocks done' >&2")
        started = time.monotonic()
        done = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            cwd=work,
            env={
                "PATH": os.defpath,
                "HOME": str(tmp_path / "home"),
                "BLINDSPOT_URL": url,
                "OMP_NUM_THREADS": "1",
            },
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{output[-6000:]}\n{served.logs()}"
        assert ">>> all blocks done" in done.stderr
        assert "the issued, current version of" in done.stdout
        assert "the service's Ed25519 signature of document" in done.stdout
        assert (work / "quickstart" / "report.pdf").read_bytes()[:5] == b"%PDF-"
        print(f"quickstart blocks: {time.monotonic() - started:.0f} s")
    finally:
        served.stop()
