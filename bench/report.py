"""Formats the benchmark's results: the table, the ratios, and the targets met or not."""

from __future__ import annotations

import os
from typing import Any

COLUMNS = [
    ("target", 8),
    ("N", 5),
    ("p50 ms", 8),
    ("p99 ms", 8),
    ("max ms", 8),
    ("lost %", 7),
    ("deliv/s", 8),
    ("CPU µs/del", 10),
    ("commit+ ms", 10),
    ("RSS MB", 7),
    ("KB/conn", 7),
    ("burst s", 8),
    ("lag s", 6),
]


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def row(r: dict[str, Any]) -> list[str]:
    """Returns one result's cells."""
    p, b = r["paced"], r.get("burst") or {}
    return [
        r["target"],
        str(r["n"]),
        _fmt(p["p50"], 1e3),
        _fmt(p["p99"], 1e3),
        _fmt(p["max"], 1e3),
        _fmt(p["lost_share"], 100, 2),
        _fmt(p["deliveries_per_s"], 1, 0),
        _fmt(p["cpu_per_delivery"], 1e6),
        f"{_fmt(p['post_commit_p50'], 1e3, 2)}/{_fmt(p['post_commit_p99'], 1e3, 2)}",
        _fmt(r["rss_after"], 1 / 2**20, 0),
        _fmt(r["kb_per_connection"]),
        _burst(b),
        _fmt(b.get("lag"), 1, 2) if b else "-",
    ]


def _burst(b: dict[str, Any]) -> str:
    """Returns the burst cell: seconds, or '>S' when some client never got the last write."""
    if not b:
        return "-"
    if b.get("total") is None:
        return f">{b['waited']:.0f}"
    return _fmt(b["total"], 1, 2)


def _burst_total(r: dict[str, Any]) -> float | None:
    """Returns the burst total, or the time waited (a lower bound) when incomplete."""
    b = r.get("burst") or {}
    if not b:
        return None
    return b["total"] if b.get("total") is not None else b["waited"]


def _line(cells: list[str]) -> str:
    return "  ".join(c.rjust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True))


def find(results: list[dict[str, Any]], target: str, n: int) -> dict[str, Any] | None:
    """Returns the result of `target` at N = n, if it ran."""
    return next((r for r in results if r["target"] == target and r["n"] == n), None)


def ratio(a: float | None, b: float | None) -> float | None:
    """Returns a / b when both are known and b is not zero."""
    return a / b if a is not None and b else None


FIGURES = [
    ("p50", lambda r: r["paced"]["p50"]),
    ("p99", lambda r: r["paced"]["p99"]),
    ("CPU/del", lambda r: r["paced"]["cpu_per_delivery"]),
    ("commit+", lambda r: r["paced"]["post_commit_p50"]),
    ("KB/conn", lambda r: r["kb_per_connection"]),
    ("burst", _burst_total),
    ("lag", lambda r: (r.get("burst") or {}).get("lag")),
]


# This project's targets: on daphne, and on uvicorn.
OURS = ("project", "uvicorn")


def table(results: list[dict[str, Any]]) -> str:
    """Returns the results table followed by the ratio lines."""
    lines = [_line([name for name, _ in COLUMNS])]
    lines += [_line(row(r)) for r in results]
    lines.append("")
    lines.append("ratios (lower is better for this project):")
    for n, ours in ((n, t) for n in sorted({r["n"] for r in results}) for t in OURS):
        project, raw, dcrf = (find(results, t, n) for t in (ours, "raw", "dcrf"))
        if project is None:
            continue
        if ours != "project":
            dcrf = None
        parts = []
        for name, get in FIGURES:
            vs_raw = ratio(get(project), get(raw)) if raw else None
            vs_dcrf = ratio(get(dcrf), get(project)) if dcrf else None
            if vs_raw is None and vs_dcrf is None:
                continue
            parts.append(
                f"{name} {_fmt(vs_raw, 1, 2)}x raw"
                + (f", DCRF {_fmt(vs_dcrf, 1, 1)}x ours" if vs_dcrf is not None else "")
            )
        if parts:
            label = f"N={n}" if ours == "project" else f"N={n} {ours}"
            lines.append(f"  {label}: " + "; ".join(parts))
    return "\n".join(lines)


def stall_table(stalls: list[dict[str, Any]]) -> str:
    """Returns the slow-client runs: readers' latency and the server's RSS growth."""
    lines = [
        "slow clients (this project, ~100 KB board updates at 20/s; readers' latency):",
        "  stalled  readers   p50 ms   p99 ms   max ms  lost %  RSS growth MB  backlog MB",
    ]
    for s in stalls:
        lines.append(
            f"  {s['stalled']:>7}  {s['readers']:>7}  {_fmt(s['p50'], 1e3):>7}  "
            f"{_fmt(s['p99'], 1e3):>7}  {_fmt(s['max'], 1e3):>7}  "
            f"{_fmt(s['lost_share'], 100, 2):>6}  {_fmt(s['rss_growth'], 1 / 2**20):>13}  "
            f"{_fmt(s['unbuffered_backlog'], 1 / 2**20, 0):>10}"
        )
    lines.append("  (backlog: what the stalled sockets would hold without flow control)")
    return "\n".join(lines)


def targets(results: list[dict[str, Any]]) -> str:
    """Returns the issue's targets, each marked met or NOT MET with its measured value."""
    checks: list[tuple[str, bool | None, str]] = []
    p1000, r1000 = find(results, "project", 1000), find(results, "raw", 1000)
    p1, r1 = find(results, "project", 1), find(results, "raw", 1)
    if p1000 and r1000:
        lost, x = p1000["paced"]["lost_share"], ratio(p1000["paced"]["p99"], r1000["paced"]["p99"])
        ok = lost == 0 and x is not None and x <= 1
        checks.append(("N=1000 at 50/s: 0 lost, p99 <= 1x raw", ok, f"lost {lost:.2%}, {x:.2f}x"))
        x = ratio(p1000["paced"]["cpu_per_delivery"], r1000["paced"]["cpu_per_delivery"])
        checks.append(("CPU per delivered message <= 1x raw (N=1000)", x <= 1, f"{x:.2f}x"))
        kb = p1000["kb_per_connection"]
        checks.append(("memory <= 25 KB per connection (N=1000)", kb <= 25, f"{kb:.1f} KB"))
        pb, rb = _burst_total(p1000), _burst_total(r1000)
        if pb is not None and rb is not None:
            shown = f"{pb:.2f}s vs {rb:.2f}s"
            checks.append(("burst N=1000 within raw's total time", pb <= rb, shown))
    p5000, r5000 = find(results, "project", 5000), find(results, "raw", 5000)
    if p5000 and r5000:
        lost, x = p5000["paced"]["lost_share"], ratio(p5000["paced"]["p99"], r5000["paced"]["p99"])
        ok = lost == 0 and x is not None and x <= 1
        rate = p5000.get("rate", 10)
        shown = f"lost {lost:.2%}, {_fmt(x, 1, 2)}x"
        checks.append((f"N=5000 at {rate:.0f}/s: 0 lost, p99 <= 1x raw", ok, shown))
        kb = p5000["kb_per_connection"]
        checks.append(("memory <= 20 KB per connection (N=5000)", kb <= 20, f"{kb:.1f} KB"))
    if p1 and r1:
        x = ratio(p1["paced"]["p50"], r1["paced"]["p50"])
        checks.append(("N=1: p50 <= 1.5x raw", x is not None and x <= 1.5, f"{x:.2f}x"))
    for n in (1, 100):
        pn, rn = find(results, "project", n), find(results, "raw", n)
        if pn and rn:
            x = ratio(pn["paced"]["p99"], rn["paced"]["p99"])
            checks.append((f"N={n}: p99 <= 3x raw", x is not None and x <= 3, f"{x:.2f}x"))
    posts = {r["n"]: r["paced"]["post_commit_p50"] for r in results if r["target"] == "project"}
    if posts:
        worst = max(posts.values())
        shown = ", ".join(f"N={n} {v * 1e3:.3f}" for n, v in sorted(posts.items()))
        checks.append(("writer post-commit <= 1 ms per save, flat in N", worst <= 1e-3, shown))
    for n in sorted({r["n"] for r in results}):
        project, raw, dcrf = (find(results, t, n) for t in ("project", "raw", "dcrf"))
        if not (project and dcrf):
            continue
        for name, get in FIGURES:
            if name == "lag":
                # A diagnostic (the broadcast's share of the burst), not one of the issue's.
                continue
            ours, theirs, limit = get(project), get(dcrf), get(raw) if raw else None
            if ours is None or theirs is None:
                continue
            x = ratio(theirs, ours)
            if limit is not None and theirs < 10 * limit and x is not None and x < 10:
                checks.append((f"N={n} {name}: 10x DCRF", None, f"{x:.1f}x; raw target governs"))
            else:
                checks.append((f"N={n} {name}: 10x DCRF", x is not None and x >= 10, f"{x:.1f}x"))
    lines = ["targets:"]
    for name, ok, value in checks:
        mark = "met" if ok else ("n/a" if ok is None else "NOT MET")
        lines.append(f"  [{mark:>7}] {name}: {value}")
    return "\n".join(lines)


def footer(elapsed: float, before: Any, after: Any, out: Any) -> str:
    """Returns the last line of a run: its time, the cores, the load average, the JSON file."""
    return (
        f"\n{elapsed:.0f} s in all on {os.cpu_count()} cores; load average "
        f"{before[0]:.1f} before, {after[0]:.1f} after; figures in {out}"
    )
