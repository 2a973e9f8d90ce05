"""
Samples a server with py-spy while a phase runs, and summarizes where its time goes.

`python -m bench.profile FILE` prints the summary of a py-spy raw (collapsed) file.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


class Sampler:
    """A py-spy recording of one process, started and stopped around a phase."""

    def __init__(self, pid: int, out: Path) -> None:
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.out = out
        args = ["record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
        args += ["--nonblocking", "--output", str(out)]
        self.proc = subprocess.Popen(
            [binary, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        """Stops sampling (py-spy writes its file on SIGINT)."""
        self.proc.send_signal(2)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _frame(text: str) -> str:
    """Returns 'function (package/module.py)' for a py-spy frame 'function (path:line)'."""
    name, _, where = text.partition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{name} ({'/'.join(Path(path).parts[-2:])})"


def summarize(path: Path, top: int = 25) -> str:
    """Returns the top functions by own time and by inclusive time, in % of samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples", "own time:"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines.append("inclusive time:")
    lines += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
