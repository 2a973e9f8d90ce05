"""
docs/quickstart.md, end to end, as a new user follows it: the package built from this
checkout and installed in a fresh virtualenv, a fresh `django-admin startproject` with the
quickstart's files read from the doc itself (so the doc cannot drift), its `manage.py`
commands, then a vote saved in another process reaching a WebSocket subscriber.

Slow (it builds and installs a package): marked `quickstart`. Wheels come from a wheelhouse
in .cache/wheelhouse, downloaded from the package index the first time only.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.support.redis_server import free_port, stop_process, wait_for_port

pytestmark = pytest.mark.quickstart

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "docs" / "quickstart.md"
WHEELHOUSE = ROOT / ".cache" / "wheelhouse"
LOCK = ROOT / "requirements" / "lock.txt"
# What the package is built from: its sources and the files pyproject.toml names.
PACKAGE_FILES = ["pyproject.toml", "LICENSE", "docs/quickstart.md", "streaming"]
# `title="path" key="value"` after a fenced block's language.
FENCE = re.compile(r"^```(\w+)((?: \w+=\"[^\"]*\")*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
ATTRIBUTE = re.compile(r"(\w+)=\"([^\"]*)\"")


@dataclass
class Block:
    """A fenced code block of the quickstart, with its attributes."""

    language: str
    attributes: dict[str, str]
    code: str


def blocks() -> list[Block]:
    """Returns the quickstart's code blocks in order."""
    return [
        Block(language, dict(ATTRIBUTE.findall(attributes)), code)
        for language, attributes, code in FENCE.findall(QUICKSTART.read_text())
    ]


def manage_commands() -> list[list[str]]:
    """Returns the `python manage.py ...` commands of the quickstart's "Run it" step."""
    run_it = QUICKSTART.read_text().split("## 8. Run it", 1)[1].split("\n## ", 1)[0]
    commands = []
    for language, _, code in FENCE.findall(run_it):
        for line in code.splitlines() if language == "sh" else []:
            words = shlex.split(line, comments=True)
            if words[:2] == ["python", "manage.py"]:
                commands.append(words[2:])
    return commands


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    """Runs a command; returns its stdout, failing the test with its output if it fails."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{shlex.join(args)}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def with_wheelhouse(command: list[str], requirements: list[str]) -> None:
    """
    Runs a pip command against the wheelhouse alone; when it lacks something, downloads
    `requirements` (with their dependencies, as pinned in lock.txt) and runs it again.
    """
    offline = [*command, "--no-index", "--find-links", str(WHEELHOUSE)]
    if subprocess.run(offline, capture_output=True).returncode == 0:
        return
    download = [sys.executable, "-m", "pip", "download", "-d", str(WHEELHOUSE), "-c", str(LOCK)]
    run([*download, *requirements], ROOT, dict(os.environ))
    # Only dependencies stay: the package itself is always the one just built.
    for stale in WHEELHOUSE.glob("django_streaming-*"):
        stale.unlink()
    run(offline, ROOT, dict(os.environ))


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Returns a fresh virtualenv with the package built from this checkout installed."""
    base = tmp_path_factory.mktemp("quickstart")
    source = base / "source"
    for name in PACKAGE_FILES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name)
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip"]
    dist = base / "dist"
    # The build's isolated environment takes setuptools from the wheelhouse too.
    with_wheelhouse([*pip, "wheel", "--no-deps", "-w", str(dist), str(source)], ["setuptools>=77"])
    (wheel,) = dist.glob("django_streaming-*.whl")
    env = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(env)], base, dict(os.environ))
    requirement = f"{wheel}[daphne,redis]"
    install = [*pip, "--python", str(env / "bin" / "python"), "install", "-c", str(LOCK)]
    with_wheelhouse([*install, requirement], [requirement])
    return env


def project_env(venv: Path, **extra: str) -> dict[str, str]:
    """Returns a new user's environment: the virtualenv first on PATH, nothing of this repo."""
    return {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "HOME": str(venv.parent), **extra}


def write_project(venv: Path, where: Path, env: dict[str, str], variant: str | None) -> Path:
    """Creates mysite and polls as the quickstart says, with its `variant` blocks too."""
    run([str(venv / "bin" / "django-admin"), "startproject", "mysite"], where, env)
    project = where / "mysite"
    run([str(venv / "bin" / "python"), "manage.py", "startapp", "polls"], project, env)
    for block in blocks():
        title, block_variant = block.attributes.get("title"), block.attributes.get("variant")
        if title is None or block_variant not in (None, variant):
            continue
        path = project / title
        path.parent.mkdir(parents=True, exist_ok=True)
        if block.attributes.get("mode") == "append":
            path.write_text(path.read_text() + "\n" + block.code)
        else:
            path.write_text(block.code)
    return project


@dataclass
class Quickstart:
    """The quickstart's project, as its "Run it" step leaves it: runserver on a free port."""

    venv: Path
    project: Path
    env: dict[str, str]
    port: int
    vote: list[str]

    def manage(self, *args: str) -> str:
        """Runs `python manage.py <args>` in another process; returns its stdout."""
        return run([str(self.venv / "bin" / "python"), "manage.py", *args], self.project, self.env)

    def get(self, path: str) -> str:
        """Returns the body of a GET to the server, asserting a 200."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as reply:
            assert reply.status == 200
            return reply.read().decode()


@pytest.fixture
def quickstart(venv: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Quickstart]:
    """
    Returns the quickstart's project after every command of its "Run it" step; parametrized
    by the docs' variant (None, or "redis" for "Several servers" with a real Redis).
    """
    variant, extra = request.param, {}
    if variant == "redis":
        extra["REDIS_URL"] = request.getfixturevalue("redis_url")
    env = project_env(venv, **extra)
    project = write_project(venv, tmp_path, env, variant)
    commands = manage_commands()
    at = next(i for i, words in enumerate(commands) if words[0] == "runserver")
    (vote,) = commands[at + 1 :]
    site = Quickstart(venv, project, env, free_port(), vote)
    for words in commands[:at]:
        site.manage(*words)
    python = str(venv / "bin" / "python")
    server = [python, "manage.py", "runserver", f"127.0.0.1:{site.port}", "--noreload"]
    process = subprocess.Popen(server, cwd=project, env=env)
    try:
        wait_for_port(site.port, timeout=60)
        yield site
    finally:
        stop_process(process)


async def watch_and_vote(site: Quickstart) -> tuple[dict, dict]:
    """Subscribes to question 1, then votes in another process; returns reply and update."""
    url = f"ws://127.0.0.1:{site.port}/ws/stream/"
    async with websockets.connect(url, origin=f"http://127.0.0.1:{site.port}") as socket:
        subscribe = {"action": "subscribe", "request_id": 1, "stream": "polls.question"}
        await socket.send(json.dumps({**subscribe, "params": {"question": 1}}))
        reply = json.loads(await asyncio.wait_for(socket.recv(), 30))
        assert reply["response_status"] == 200, reply
        await asyncio.to_thread(site.manage, *site.vote)
        update = await asyncio.wait_for(next_update(socket), 30)
    return reply, update


async def next_update(socket: Any) -> dict[str, Any]:
    """Returns the socket's next message other than a heartbeat (one every 10 s by default)."""
    while True:
        message = json.loads(await socket.recv())
        if message.get("action") != "heartbeat":
            return message


def assert_the_vote_arrives(site: Quickstart) -> None:
    """Asserts the snapshot has no votes and the update after the vote has one."""
    reply, update = asyncio.run(watch_and_vote(site))
    assert reply["data"]["payload"] == {
        "question": "What is new?",
        "choices": [
            {"id": 1, "choice_text": "Not much", "votes": 0},
            {"id": 2, "choice_text": "The sky", "votes": 0},
        ],
    }
    assert update["action"] == "update"
    assert update["key"] == reply["data"]["key"]
    assert update["version"] > reply["data"]["version"]
    assert [choice["votes"] for choice in update["payload"]["choices"]] == [1, 0]


def test_the_venv_holds_the_streaming_package_alone(venv: Path):
    """Tests that the install has streaming (client.js, py.typed) and none of the demo."""
    code = (
        "import importlib.util as u, pathlib, streaming; "
        "root = pathlib.Path(streaming.__file__).parent; "
        "print(streaming.__version__, root.parent.name, (root / 'py.typed').exists(), "
        "(root / 'static/streaming/client.js').exists(), "
        "[name for name in ('metrics', 'settings', 'bench', 'tests') if u.find_spec(name)])"
    )
    out = run([str(venv / "bin" / "python"), "-c", code], venv.parent, project_env(venv))
    assert out.split(" ", 4) == ["0.2.0", "site-packages", "True", "True", "[]\n"]


@pytest.mark.redis
@pytest.mark.parametrize("quickstart", ["redis"], indirect=True)
def test_quickstart_with_redis_a_vote_from_another_process_reaches_a_subscriber(quickstart):
    """
    Tests the quickstart with its "several servers" channel layer (a real Redis): the page
    and client.js are served, and a vote saved by `manage.py shell` updates a subscriber.
    """
    assert "/static/streaming/client.js" in quickstart.get("/polls/1/live/")
    assert "StreamClient" in quickstart.get("/static/streaming/client.js")
    found = quickstart.manage("findstatic", "streaming/client.js")
    assert "site-packages/streaming/static/streaming/client.js" in found
    assert_the_vote_arrives(quickstart)


@pytest.mark.parametrize("quickstart", [None], indirect=True)
def test_quickstart_on_one_machine_a_vote_from_another_process_reaches_a_subscriber(quickstart):
    """
    Tests the quickstart as written for one machine (no CHANNEL_LAYERS, no Redis): a vote
    saved by `manage.py shell` updates a subscriber of the runserver process.
    """
    assert_the_vote_arrives(quickstart)
