"""Production mode: secrets have no defaults, and the deploy checklist passes. Every numeric and
boolean variable goes through one parser that names the variable and the form it expects. The
models and their migrations agree."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from config.env import env_bool, env_choice, env_float, env_int, env_str

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


def test_production_refuses_the_filesystem_broker_of_make_serve(tmp_path):
    result = _check_deploy(
        tmp_path,
        DJANGO_SECRET_KEY="x7#Kq9!vLp2$Rw8@Zm4&Tn6^Yb3*Hc5(Jd1)Fg0-Se+Ua=Wi_Oe|Nr~Pt",
        DJANGO_ALLOWED_HOSTS="blindspot.example.org",
        BLINDSPOT_SIGNING_KEY_PATH=str(tmp_path / "key.pem"),
        CELERY_BROKER_URL="filesystem://localhost/",
    )
    assert result.returncode != 0
    assert "A filesystem:// broker is for make serve; use Redis." in result.stderr


def test_the_filesystem_broker_of_make_serve_keeps_its_messages_under_var(tmp_path):
    """Not eager; one folder for queued messages (kombu writes to `data_folder_out` and reads
    from `data_folder_in`), all under var/broker and created; no remote control."""
    show = (
        "from config.celery import app; import json; "
        "print(json.dumps([app.conf.task_always_eager, app.conf.worker_enable_remote_control, "
        "app.conf.broker_transport_options]))"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BLINDSPOT_"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", show],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, "BLINDSPOT_VAR_DIR": str(tmp_path), "CELERY_BROKER_URL": "filesystem://"},
    )
    assert result.returncode == 0, result.stderr
    eager, remote_control, options = json.loads(result.stdout.strip().splitlines()[-1])
    assert eager is False and remote_control is False
    broker = tmp_path / "broker"
    assert options["data_folder_in"] == options["data_folder_out"] == str(broker / "messages")
    assert options["store_processed"] is True
    for key in ("data_folder_in", "processed_folder", "control_folder"):
        assert Path(options[key]).is_dir() and Path(options[key]).parent == broker


def _check(tmp_path, **env) -> subprocess.CompletedProcess:
    """`manage.py check` in development mode with `env` on top of a clean environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "BLINDSPOT_"))}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, "BLINDSPOT_VAR_DIR": str(tmp_path), **env},
    )


def test_an_unknown_runner_device_stops_the_process_with_a_clear_error(tmp_path):
    result = _check(tmp_path, BLINDSPOT_RUNNER_DEVICE="gpu")
    assert result.returncode != 0
    assert "BLINDSPOT_RUNNER_DEVICE must be auto, cpu or cuda, not 'gpu'" in result.stderr


# --- the one parser every numeric and boolean variable goes through -----------------------------


@pytest.mark.parametrize(
    ("parse", "value", "message"),
    [
        (lambda e: env_int("N", 1, environ=e), "12x", "N must be a whole number, not '12x'."),
        (lambda e: env_int("N", 1, environ=e), "1.5", "N must be a whole number, not '1.5'."),
        (
            lambda e: env_int("N", 1, minimum=1, environ=e),
            "0",
            "N must be a whole number of at least 1, not '0'.",
        ),
        (
            lambda e: env_float("S", 1.0, environ=e),
            "fast",
            "S must be a finite number, not 'fast'.",
        ),
        (lambda e: env_float("S", 1.0, environ=e), "nan", "S must be a finite number, not 'nan'."),
        (lambda e: env_float("S", 1.0, environ=e), "inf", "S must be a finite number, not 'inf'."),
        (
            lambda e: env_float("S", 1.0, minimum=1, environ=e),
            "0.5",
            "S must be a finite number of at least 1, not '0.5'.",
        ),
        (
            lambda e: env_bool("B", False, environ=e),
            "maybe",
            "B must be one of 1, true, yes, on, 0, false, no, off, not 'maybe'.",
        ),
        (
            lambda e: env_choice("C", "a", ("a", "b", "c"), environ=e),
            "d",
            "C must be a, b or c, not 'd'.",
        ),
    ],
)
def test_a_bad_value_names_the_variable_and_the_expected_form(parse, value, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        parse({"N": value, "S": value, "B": value, "C": value})
    assert str(refused.value) == message


def test_good_values_and_unset_or_empty_variables():
    assert env_int("N", 7, environ={}) == 7
    assert env_int("N", 7, environ={"N": " "}) == 7  # empty counts as unset
    assert env_int("N", 7, minimum=0, environ={"N": "1_000"}) == 1000
    assert env_float("S", 2.5, environ={"S": "0.25"}) == 0.25
    assert [env_bool("B", False, environ={"B": v}) for v in ("1", "TRUE", "yes", "On")] == [
        True
    ] * 4
    assert [env_bool("B", True, environ={"B": v}) for v in ("0", "False", "no", "OFF")] == [
        False
    ] * 4
    assert env_choice("C", "a", ("a", "b"), environ={"C": "b"}) == "b"
    with pytest.raises(ImproperlyConfigured, match="^X must be set.$"):
        env_str("X", environ={})


def test_a_bad_numeric_setting_stops_the_process_naming_the_variable(tmp_path):
    result = _check(tmp_path, BLINDSPOT_RUN_SHARD_SIZE="lots")
    assert result.returncode != 0
    assert "BLINDSPOT_RUN_SHARD_SIZE must be a whole number of at least 1, not 'lots'" in (
        result.stderr
    )


def test_the_models_and_their_migrations_agree(db):
    """A model change without its migration fails here, not on a partner's database."""
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exit_:
        pytest.fail(f"models changed without a migration (exit {exit_.code}):\n{out.getvalue()}")
