"""The suite's own plumbing: the conftest's xdist hook must not break a run without xdist
(`-p no:xdist`, how the browser journeys are run by hand)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_suite_collects_without_xdist():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:xdist",
            "--collect-only",
            "-q",
            "tests/web/test_foundation.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
