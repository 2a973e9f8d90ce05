"""
Deployment safety of settings.prod, checked in fresh processes as a server would start:
`manage.py check --deploy` passes with a sample environment, and no SECRET_KEY, no start.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What an operator sets (docs/security.md); the key is 50+ random characters.
SAMPLE_ENV = {
    "DJANGO_SETTINGS_MODULE": "settings.prod",
    "SECRET_KEY": "k3J9-sample-only-vQ2xW8pL5mN0rT7yU4iO1aS6dF3gH9jK2lZ8xC5vB0nM7qE4wR",
    "ALLOWED_HOSTS": "metrics.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://metrics.example.com",
    "DATABASE_URL": "postgres://metrics@db.example.com:5432/metrics",
    "REDIS_URL": "redis://redis.example.com:6379/0",
    # HSTS is opt-in; this operator opted in fully (else W004/W005/W021 remain as advice).
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}
HSTS = ("SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD")


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs a command in the project with exactly the given variables (plus PATH)."""
    return subprocess.run(
        args,
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    """Runs `manage.py check --deploy`, failing on warnings too."""
    return run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)


def test_check_deploy_passes_with_prod_settings_and_a_sample_environment():
    """Tests that check --deploy reports no issue at all, warnings included."""
    result = check_deploy(SAMPLE_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_prod_settings_are_secure_by_default():
    """Tests the values prod derives from the sample environment: debug off, secure cookies."""
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SESSION_COOKIE_HTTPONLY, s.ALLOWED_HOSTS, s.CSRF_TRUSTED_ORIGINS, "
        "s.SECURE_HSTS_SECONDS, s.DATA_UPLOAD_MAX_MEMORY_SIZE)"
    )
    result = run([sys.executable, "-c", code], SAMPLE_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "False", "True", "True", "True", "True",
        "['metrics.example.com']", "['https://metrics.example.com']", "31536000", "65536",
    ]  # fmt: skip


def test_hsts_is_opt_in():
    """Tests that without SECURE_HSTS_SECONDS the only deploy warning is HSTS (W004)."""
    env = {k: v for k, v in SAMPLE_ENV.items() if k not in HSTS}
    result = check_deploy(env)
    assert result.returncode != 0
    assert "security.W004" in result.stderr
    assert result.stderr.count("(security.") == 1, result.stderr


def test_prod_refuses_to_start_without_a_secret_key():
    """Tests that manage.py and daphne both exit with an error when SECRET_KEY is unset."""
    env = {k: v for k, v in SAMPLE_ENV.items() if k != "SECRET_KEY"}
    check = run([sys.executable, "manage.py", "check"], env)
    assert check.returncode != 0
    assert "SECRET_KEY must be set" in check.stderr
    daphne = [sys.executable, "-m", "daphne", "-p", "0", "settings.asgi:application"]
    server = run(daphne, env, timeout=30)
    assert server.returncode != 0
    assert "SECRET_KEY must be set" in server.stderr


def test_the_served_application_sets_the_servers_gc_thresholds() -> None:
    """
    Tests that a process loading settings.asgi (as daphne does) runs with the documented GC
    thresholds, and that management commands keep CPython's own.
    """
    probe = "import gc, settings.asgi as a; print(gc.get_threshold() == a.GC_THRESHOLDS)"
    served = run([sys.executable, "-c", probe], {**SAMPLE_ENV, "DATABASE_URL": "sqlite:///x"})
    assert served.stdout.strip() == "True", served.stderr
    command = "import gc, django; django.setup(); print(gc.get_threshold())"
    managed = run([sys.executable, "-c", command], {"DJANGO_SETTINGS_MODULE": "settings.dev"})
    assert managed.stdout.strip() == "(700, 10, 10)", managed.stderr
