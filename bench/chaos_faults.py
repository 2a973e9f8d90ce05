"""
The processes the chaos soak (bench/chaos.py) breaks on purpose: a Redis that can restart
empty or from an older RDB snapshot and be paused, daphne servers that restart on their port,
and writer processes that are SIGKILLed and restarted.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from tests.support.processes import ROOT
from tests.support.redis_server import RedisServer, free_port, stop_process, wait_for_port

MIB = 1024 * 1024


class ChaosRedis(RedisServer):
    """A RedisServer that keeps RDB snapshots to restart from, and can be paused."""

    def snapshot(self) -> None:
        """Saves the dataset (SAVE) and keeps the file as the snapshot to restore later."""
        import redis

        redis.Redis.from_url(self.url, socket_timeout=10).save()
        shutil.copy(Path(self.dir) / "dump.rdb", Path(self.dir) / "older.rdb")

    def restart_from(self, snapshot: bool) -> None:
        """Kills Redis and starts it empty, or from the older snapshot when there is one."""
        self.stop()
        dump, older = Path(self.dir) / "dump.rdb", Path(self.dir) / "older.rdb"
        dump.unlink(missing_ok=True)
        if snapshot and older.exists():
            shutil.copy(older, dump)
        self.start()

    async def pause(self, seconds: float) -> None:
        """Stops the process (SIGSTOP) for `seconds`, then lets it go on (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.process.send_signal(signal.SIGCONT)


class Server:
    """One daphne process on a fixed port, restartable; remembers its RSS samples."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.name, self.env, self.port = name, env, free_port()
        self.log = open(logs / f"{name}.log", "ab")  # noqa: SIM115
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.peak = 0.0

    @property
    def ws_url(self) -> str:
        """Returns the stream endpoint."""
        return f"ws://127.0.0.1:{self.port}/ws/stream/"

    def start(self) -> None:
        """Starts daphne and waits until it accepts connections."""
        args = [sys.executable, "-m", "daphne", "-v", "0", "-b", "127.0.0.1", "-p", str(self.port)]
        self.process = subprocess.Popen(
            [*args, "settings.asgi:application"], cwd=ROOT, env=self.env, stdout=self.log,
            stderr=self.log,
        )  # fmt: skip
        wait_for_port(self.port, timeout=60)

    def stop(self, crash: bool = False) -> None:
        """Stops daphne: SIGKILL (`crash`) or SIGTERM."""
        if self.process is None:
            return
        if crash:
            self.process.kill()
            self.process.wait(10)
        else:
            stop_process(self.process)
        self.process = None

    def rss(self) -> float:
        """Returns the resident memory in MiB (0 while stopped); keeps the peak."""
        if self.process is None:
            return 0.0
        mib = psutil.Process(self.process.pid).memory_info().rss / MIB
        self.peak = max(self.peak, mib)
        return mib


class Writer:
    """One writer slot: a bench.chaos_writer process in a mode, restarted after each kill."""

    def __init__(self, mode: str, env: dict[str, str], rate: float, weeks: list[str]) -> None:
        self.mode, self.env, self.rate, self.weeks = mode, env, rate, weeks
        self.process: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None
        self.committed = self.failed = self.kills = self.runs = 0

    async def start(self, deadline: float) -> None:
        """Starts a writer process with a fresh seed that writes until `deadline` (Unix time)."""
        self.runs += 1
        seed = int.from_bytes(os.urandom(4), "big")
        args = [self.mode, str(seed), str(self.rate), repr(deadline), *self.weeks]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.chaos_writer", *args, cwd=ROOT, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self.reader = asyncio.get_running_loop().create_task(self._count(self.process))

    async def _count(self, process: Any) -> None:
        while chunk := await process.stdout.read(4096):
            self.committed += chunk.count(b".")
            self.failed += chunk.count(b"!")

    async def kill(self) -> None:
        """SIGKILLs the running process, wherever it is in its transaction."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            self.kills += 1
        await self.wait()

    async def wait(self) -> None:
        """Waits for the process and its output."""
        if self.process is not None:
            await self.process.wait()
        if self.reader is not None:
            await self.reader
