"""The production layout runs as written: the Procfile's and the systemd units' commands use
installed programs with options those programs accept, agree on queues and pools, and every
variable the environment files set is one the settings (or CUDA) read."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def _procfile() -> dict[str, list[str]]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name] = shlex.split(command)
    return entries


def _unit_command(name: str) -> list[str]:
    text = (ROOT / "deploy" / "systemd" / name).read_text()
    match = re.search(r"^ExecStart=(.+)$", text, re.M)
    assert match is not None, f"{name} has no ExecStart= line"
    return shlex.split(match.group(1))


def _option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_every_process_has_an_installed_program():
    processes = _procfile()
    assert set(processes) == {"release", "web", "cpu", "gpu"}
    for argv in processes.values():
        assert (VENV_BIN / Path(argv[0]).name).exists(), argv[0]


def test_procfile_and_systemd_agree_on_queues_and_pools():
    processes = _procfile()
    gpu, cpu = (
        _unit_command("blindspot-gpu-worker@.service"),
        _unit_command("blindspot-cpu-worker.service"),
    )
    assert _option(gpu, "--queues") == _option(processes["gpu"], "--queues") == "gpu"
    assert _option(gpu, "--pool") == _option(processes["gpu"], "--pool") == "solo"
    assert _option(cpu, "--queues") == _option(processes["cpu"], "--queues") == "default,reports"
    from config.celery import QUEUES

    served = {q for argv in (gpu, cpu) for q in _option(argv, "--queues").split(",")}
    assert served == set(QUEUES)  # every queue has a consumer


def test_environment_files_name_only_settings_that_exist():
    settings_source = (ROOT / "config" / "settings.py").read_text()
    external = {"CUDA_VISIBLE_DEVICES"}
    for name in ("blindspot.env.example", "gpu-worker.env.example"):
        for line in (ROOT / "deploy" / name).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key = line.split("=", 1)[0]
                assert key in external or f'"{key}"' in settings_source, f"{name}: {key}"


@pytest.mark.parametrize("process", ["web", "gpu"])
def test_the_commands_start_in_production_mode(process, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "BLINDSPOT_ENV": "production",
        "DJANGO_SECRET_KEY": "x" * 60,
        "DJANGO_ALLOWED_HOSTS": "blindspot.example.org",
        "BLINDSPOT_SIGNING_KEY_PATH": str(tmp_path / "key.pem"),
        "BLINDSPOT_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    argv = _procfile()[process]
    if process == "web":
        check = [str(VENV_BIN / "gunicorn"), *argv[1:], "--check-config"]
    else:  # the worker's own option parser and app loading, without connecting
        check = [str(VENV_BIN / "celery"), *argv[1:4], "--help"]
    done = subprocess.run(check, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
