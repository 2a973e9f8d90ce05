"""
Static files as settings.prod serves them (docs/deploy.md): collectstatic builds the hashed
manifest, and daphne serves those files through whitenoise and answers /healthz.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.processes import ROOT, DaphneServer, process_env

PROD = {
    "DJANGO_SETTINGS_MODULE": "settings.prod",
    "SECRET_KEY": "prod-like-test-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH",
    "ALLOWED_HOSTS": "127.0.0.1",
    # The test talks plain HTTP to daphne; behind a TLS proxy this stays on.
    "SECURE_SSL_REDIRECT": "false",
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
def test_collectstatic_then_daphne_serves_hashed_files_and_health(tmp_path: Path, redis_url):
    """
    Tests that collected, hashed static files are served by whitenoise in production, the
    client's module form included.
    """
    static_root = str(tmp_path / "static")
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=process_env(None, **PROD, STATIC_ROOT=static_root),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    paths = json.loads((tmp_path / "static" / "staticfiles.json").read_text())["paths"]
    hashed = paths["streaming/client.js"]
    assert hashed != "streaming/client.js"
    assert "vendor/chart.umd.min.js" in paths

    server = DaphneServer(redis_url, **PROD, STATIC_ROOT=static_root).start()
    try:
        with urllib.request.urlopen(f"{server.http_url}/static/{hashed}", timeout=10) as response:
            assert response.status == 200
            assert "immutable" in response.headers["Cache-Control"]
            assert b"WebSocket" in response.read()
        # The module form is served as JavaScript (browsers refuse modules otherwise), and
        # the unhashed client.js it imports is there too.
        module = paths["streaming/client.mjs"]
        for name in (module, "streaming/client.js"):
            with urllib.request.urlopen(f"{server.http_url}/static/{name}", timeout=10) as response:
                assert response.status == 200
                assert "javascript" in response.headers["Content-Type"], name
        with urllib.request.urlopen(f"{server.http_url}/healthz", timeout=10) as response:
            assert json.loads(response.read())["status"] == "ok"
    finally:
        server.stop()
