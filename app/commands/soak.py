"""`python -m app soak --minutes N [--chaos]`: the app on the simulator with bursts and chaos, watched from outside.

The soaked app runs in a child process (app.soak.worker) so that a crash is observed, not suffered: this process
samples the child's RSS and CPU with psutil, collects its latency / depth samples, and at the end judges the run:
RSS slope, CPU, latency percentiles, crashes, lost and duplicated trades. Exit code 1 when any check fails.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from typing import Any

import psutil

NAME = "soak"
HELP = "long run on the simulator with bursts and chaos; reports RSS slope, CPU, latency, crashes, loss"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--chaos-every", type=float, default=60.0, help="seconds between chaos actions")
    p.add_argument("--isolation", choices=["thread", "process"], default="thread")
    p.add_argument("--max-rss-slope", type=float, default=1.0, help="MB/h allowed")
    p.add_argument("--max-cpu", type=float, default=50.0, help="mean CPU %% of one core allowed")
    p.add_argument("--chaos", action="store_true",
                   help="storage faults too (a full disk, Valkey refusing writes, in turn with the other chaos), "
                        "then check frame by frame that the journal and Valkey agree at the end")


def slope_mb_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of RSS (MB) over time (h), after the first 20 % (start-up allocations)."""
    pts = points[int(len(points) * 0.2):]
    if len(pts) < 3:
        return 0.0
    n = len(pts)
    mx = sum(t for t, _ in pts) / n
    my = sum(m for _, m in pts) / n
    var = sum((t - mx) ** 2 for t, _ in pts)
    if var == 0:
        return 0.0
    return sum((t - mx) * (m - my) for t, m in pts) / var


def run(args: argparse.Namespace) -> int:
    seconds = args.minutes * 60.0
    overrides = {"feed.isolation": args.isolation, "zmq.endpoint": "tcp://127.0.0.1:0"}
    cmd = [sys.executable, "-m", "app.soak.worker", str(seconds), str(args.chaos_every), str(args.sample_every),
           args.config or "", json.dumps(overrides), "storage" if args.chaos else ""]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    proc = psutil.Process(child.pid)
    samples: list[dict[str, Any]] = []
    chaos: list[dict[str, Any]] = []
    final: dict[str, Any] = {}
    stderr_tail: list[str] = []

    def read_stdout() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            kind = msg.pop("kind", "")
            if kind == "sample":
                samples.append(msg)
            elif kind in ("chaos", "chaos_error"):
                chaos.append({"kind": kind, **msg})
            elif kind == "final":
                final.update(msg)

    def read_stderr() -> None:
        assert child.stderr is not None
        for line in child.stderr:
            stderr_tail.append(line.rstrip())
            del stderr_tail[:-50]

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for r in readers:
        r.start()
    rss: list[tuple[float, float]] = []
    cpu: list[float] = []
    t0 = time.monotonic()
    proc.cpu_percent(None)
    while child.poll() is None:
        time.sleep(min(args.sample_every, 1.0) if not rss else args.sample_every)
        try:
            mem, load = proc.memory_info().rss / 2**20, proc.cpu_percent(None)
        except psutil.NoSuchProcess:
            break
        if child.poll() is not None or mem == 0:  # exited between the checks: not a sample of a live process
            break
        rss.append(((time.monotonic() - t0) / 3600.0, mem))
        cpu.append(load)
        if not args.json:
            last = samples[-1] if samples else {}
            print(f"soak {time.monotonic() - t0:7.0f}s rss {rss[-1][1]:7.1f} MB cpu {cpu[-1]:5.1f}% "
                  f"trades {last.get('trades', 0):,} depth {last.get('bridge_depth', 0)} "
                  f"gaps {last.get('missing', 0) + last.get('repeated', 0)}", file=sys.stderr, flush=True)
    code = child.wait()
    for r in readers:
        r.join(5)
    crashes = 0 if code == 0 else 1
    cpu_steady = cpu[1:] or cpu
    last_lat = final.get("callback_to_decision_us", {})
    result = {
        "minutes": round((time.monotonic() - t0) / 60.0, 2),
        "isolation": args.isolation,
        "exit_code": code,
        "crashes": crashes,
        "lost_trades": final.get("missing", samples[-1]["missing"] if samples else 0),
        "duplicated_trades": final.get("repeated", samples[-1]["repeated"] if samples else 0),
        "valkey_unacked": final.get("valkey_unacked", 0),
        "violations": final.get("violations", 0),
        "trades": final.get("trades", samples[-1]["trades"] if samples else 0),
        "decisions": final.get("decisions", 0),
        "rss_mb_start": round(rss[0][1], 1) if rss else 0.0,
        "rss_mb_end": round(rss[-1][1], 1) if rss else 0.0,
        "rss_slope_mb_per_h": round(slope_mb_per_hour(rss), 3),
        "cpu_mean": round(sum(cpu_steady) / len(cpu_steady), 2) if cpu_steady else 0.0,
        "cpu_max": round(max(cpu_steady), 2) if cpu_steady else 0.0,
        "callback_to_decision_us": last_lat,
        "callback_to_loop_us": final.get("callback_to_loop_us", {}),
        "bridge_max_depth": final.get("bridge_max_depth", 0),
        "chaos": final.get("chaos", {}),
        "chaos_errors": final.get("chaos_errors", []),
        "samples": len(samples),
        "valkey_at_end": final.get("summary", {}).get("valkey") or final.get("valkey"),
        "journal_at_end": final.get("journal"),
        "rss_mb_every_5_min": [round(m, 1) for t, m in rss[:: max(1, int(300 / args.sample_every))]],
    }
    if args.chaos:
        result["journal_vs_valkey"] = final.get("journal_vs_valkey")
    checks = {
        "no_crash": crashes == 0 and bool(final),
        "no_lost_trades": result["lost_trades"] == 0,
        "no_duplicated_trades": result["duplicated_trades"] == 0,
        "valkey_caught_up": result["valkey_unacked"] == 0,
        "no_violations": result["violations"] == 0,
        "no_chaos_errors": not result["chaos_errors"],
        "rss_slope_ok": result["rss_slope_mb_per_h"] <= args.max_rss_slope,
        "cpu_ok": result["cpu_mean"] <= args.max_cpu,
    }
    if args.chaos:
        cmp = result["journal_vs_valkey"] or {}
        checks["journal_equals_valkey"] = cmp.get("compared", 0) > 0 and cmp.get("missing") == 0
    result["checks"] = checks
    result["passed"] = all(checks.values())
    if not final:
        result["error"] = "the soaked process ended without a final report: " + " | ".join(stderr_tail[-5:])
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        for k, v in result.items():
            if k not in ("checks",):
                print(f"{k:28s} {v}")
        for k, v in checks.items():
            print(f"check {k:22s} {'ok' if v else 'FAILED'}")
    return 0 if result["passed"] else 1
