"""The chaos soak (bench/chaos.py), shrunk: 20 subscribers through 7 s of faults."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT


def test_small_chaos_soak_converges_without_states_going_back(tmp_path):
    """
    Tests that a small chaos soak (a writer SIGKILLed, a server restarted under its
    subscribers, Redis restarted or paused) ends with every subscriber holding the
    database's state for every key and none having applied a state going back.
    """
    args = ["--seconds", "7", "--subscribers", "20", "--quiet", "4", "--fault-every", "1.5"]
    # Seed 5 draws a writer SIGKILL, then a server restart, then Redis faults.
    args += ["--seed", "5", "--database-url", f"sqlite:///{tmp_path / 'chaos.sqlite3'}"]
    result = subprocess.run(
        [sys.executable, "-m", "bench.chaos", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    output = result.stdout + result.stderr
    rows = {line[:20].strip(): line[20:].strip() for line in result.stdout.splitlines()}
    assert result.returncode == 0, output
    assert "writer SIGKILL" in rows["faults"], output
    assert "server restart" in rows["faults"], output
    resubscribes = int(rows["sessions"].split("(")[1].split()[0])
    assert resubscribes > 0, output
    assert rows["stale at the end"].startswith("0 of 60 "), output
    assert rows["states going back"] == "0", output
