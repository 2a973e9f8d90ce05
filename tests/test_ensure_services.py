"""
scripts/ensure-services, which `make test` runs first: when it may not install what the
suite needs, it stops before the suite with the command to run; else it runs the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "ensure-services"


def ensure_services(command: list[str], **env: str) -> subprocess.CompletedProcess:
    """Runs the script, wrapping `command`, with this process's environment plus `env`."""
    return subprocess.run(
        [str(SCRIPT), *command],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_stops_before_the_suite_with_the_install_command(tmp_path: Path):
    """Tests that with chromium missing and installing forbidden, it exits 1 and runs nothing."""
    ran = tmp_path / "suite-ran"
    result = ensure_services(
        ["touch", str(ran)], NO_INSTALL="1", CHROMIUM=str(tmp_path / "no-chromium")
    )
    assert result.returncode == 1
    install = [line for line in result.stderr.splitlines() if "apt-get install -y" in line]
    assert len(install) == 1, result.stderr
    assert "chromium" in install[0].split("apt-get install -y", 1)[1].split()
    assert not ran.exists()


def test_it_runs_the_suite_with_the_given_postgresql_url(tmp_path: Path):
    """Tests that with nothing missing it runs the command, passing a postgres DATABASE_URL on."""
    url = "postgres://someone:secret@db.example.com:5432/metrics"
    code = "import os; print(os.environ['DATABASE_URL'])"
    result = ensure_services(
        [sys.executable, "-c", code], NO_INSTALL="1", CHROMIUM=sys.executable, DATABASE_URL=url
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == url
