"""Production mode: secrets have no defaults, and the deploy checklist passes."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _check_deploy(tmp_path, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BLINDSPOT_"))}
    base.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, "BLINDSPOT_ENV": "production", "BLINDSPOT_VAR_DIR": str(tmp_path), **env},
    )


def test_production_refuses_to_start_without_secrets(tmp_path):
    result = _check_deploy(tmp_path)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_passes_the_deploy_checklist(tmp_path):
    result = _check_deploy(
        tmp_path,
        DJANGO_SECRET_KEY="x7#Kq9!vLp2$Rw8@Zm4&Tn6^Yb3*Hc5(Jd1)Fg0-Se+Ua=Wi_Oe|Nr~Pt",
        DJANGO_ALLOWED_HOSTS="blindspot.example.org",
        BLINDSPOT_SIGNING_KEY_PATH=str(tmp_path / "key.pem"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_an_unknown_runner_device_stops_the_process_with_a_clear_error(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BLINDSPOT_"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, "BLINDSPOT_VAR_DIR": str(tmp_path), "BLINDSPOT_RUNNER_DEVICE": "gpu"},
    )
    assert result.returncode != 0
    assert "BLINDSPOT_RUNNER_DEVICE must be auto, cpu or cuda, not 'gpu'" in result.stderr
