"""`python -m app soak --minutes N [--chaos] [--market-day]`: the app on the simulator with bursts and chaos, watched
from outside. `--market-day` runs until a full B3 session's worth of trades went through (app.soak.market_day).

The soaked app runs in a child process (app.soak.worker) so that a crash is observed, not suffered: this process
samples the child's RSS and CPU with psutil, collects its latency / depth samples, and at the end judges the run:
RSS slope, CPU, latency percentiles, crashes, lost and duplicated trades. Exit code 1 when any check fails.
`--live` is a different soak: live routing through rounds of faults (app.soak.live_faults).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import psutil

NAME = "soak"
HELP = "long run on the simulator with bursts and chaos; reports RSS slope, CPU, latency, crashes, loss"


def _live(args: argparse.Namespace) -> int:
    from app.soak import live_faults

    if args.rounds < 1 or args.round_seconds <= 0:
        print("error: --rounds must be >= 1 and --round-seconds > 0", file=sys.stderr)
        return 2
    out = sys.stderr if args.json else sys.stdout
    result = live_faults.soak(args.rounds, args.round_seconds, timeout=args.round_seconds * 10 + 120,
                              report=lambda line: print(line, file=out, flush=True))
    if args.json:
        print(json.dumps(result))
    else:
        print(live_faults.render(result))
    return 0 if result["ok"] else 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=None,
                   help="duration (default 30); with --market-day the ceiling (default 90)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--chaos-every", type=float, default=60.0, help="seconds between chaos actions")
    p.add_argument("--isolation", choices=["thread", "process"], default="thread")
    p.add_argument("--live", action="store_true",
                   help="live routing on the stand-in's broker through --rounds of mixed faults (duplicated, "
                        "reordered updates, routing drops, feed-child kills, deaths inside SendOrder, app kill -9); "
                        "prints the fault table, exit 1 if any order was doubled, sent while reconciliation "
                        "disagreed, or left broker and ours apart")
    p.add_argument("--rounds", type=int, default=12, help="--live: rounds of about --round-seconds each")
    p.add_argument("--round-seconds", type=float, default=6.0, help="--live: trading seconds per round")
    p.add_argument("--max-rss-slope", type=float, default=1.0, help="MB/h allowed")
    p.add_argument("--max-cpu", type=float, default=None,
                   help="mean CPU %% of one core allowed (default 50; 100 with --market-day, which runs flat out)")
    p.add_argument("--chaos", action="store_true",
                   help="storage faults too (a full disk, Valkey refusing writes, in turn with the other chaos), "
                        "then check frame by frame that the journal and Valkey agree at the end")
    p.add_argument("--market-day", action="store_true",
                   help="run until --trades trades (a busy WDO + WIN session) went through at --rate, with chaos; "
                        "journal and Valkey compared frame by frame at the end; scratch data directory")
    p.add_argument("--trades", type=int, default=None, help="--market-day: trades to replay (default 2,000,000)")
    p.add_argument("--rate", type=float, default=None,
                   help="--market-day: trades/s per ticker offered outside bursts (default 2500 in thread mode, "
                        "1500 in process mode: what the reference box sustains with chaos; bursts at 3x)")
    p.add_argument("--keep-data", action="store_true", help="--market-day: keep the scratch data directory")


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
    from app.soak import market_day

    if args.live:
        return _live(args)

    if not args.market_day and (args.trades is not None or args.rate is not None or args.keep_data):
        print("soak: --trades, --rate and --keep-data go with --market-day; add it or drop them", file=sys.stderr)
        return 2
    if args.market_day and ((args.trades is not None and args.trades <= 0) or
                            (args.rate is not None and args.rate <= 0)):
        print("soak: --trades and --rate must be positive, e.g. --trades 2000000 --rate 2500", file=sys.stderr)
        return 2
    args.minutes = args.minutes if args.minutes is not None else (90.0 if args.market_day else 30.0)
    args.max_cpu = args.max_cpu if args.max_cpu is not None else (100.0 if args.market_day else 50.0)
    seconds = args.minutes * 60.0
    overrides: dict[str, Any] = {"feed.isolation": args.isolation, "zmq.endpoint": "tcp://127.0.0.1:0"}
    flags, target, scratch = ["storage"] if args.chaos else [], 0, ""
    if args.market_day:
        target = args.trades if args.trades is not None else market_day.TRADES
        scratch = tempfile.mkdtemp(prefix="hmarl-market-day-")
        rate = args.rate if args.rate is not None else market_day.RATE[args.isolation]
        overrides.update(market_day.overrides(rate, scratch))
        flags.append("compare")
    try:
        return _soak(args, seconds, overrides, ",".join(flags), target)
    finally:
        if scratch and not args.keep_data:
            shutil.rmtree(scratch, ignore_errors=True)
        elif scratch:
            print(f"soak: data kept in {scratch}", file=sys.stderr)


def _children_cpu(proc: psutil.Process, seen: dict[int, psutil.Process]) -> float:
    """CPU % of every descendant (the feed child in process mode, the embedded valkey-server) since the last call;
    a descendant met for the first time counts from now on."""
    total = 0.0
    try:
        kids = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    for kid in kids:
        known = seen.get(kid.pid)
        try:
            if known is None:
                seen[kid.pid] = kid
                kid.cpu_percent(None)
            else:
                total += known.cpu_percent(None)
        except psutil.NoSuchProcess:
            seen.pop(kid.pid, None)
    return total


def _soak(args: argparse.Namespace, seconds: float, overrides: dict[str, Any], flags: str, target: int) -> int:
    cmd = [sys.executable, "-m", "app.soak.worker", str(seconds), str(args.chaos_every), str(args.sample_every),
           args.config or "", json.dumps(overrides), flags, str(target)]
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
    cpu_kids: list[float] = []
    kids: dict[int, psutil.Process] = {}
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
        cpu_kids.append(_children_cpu(proc, kids))
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
    kids_steady = cpu_kids[1:] or cpu_kids
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
        "cpu_children_mean": round(sum(kids_steady) / len(kids_steady), 2) if kids_steady else 0.0,
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
    if args.chaos or target:
        result["journal_vs_valkey"] = final.get("journal_vs_valkey")
    if target:
        elapsed = final.get("elapsed_s", 0.0) or 1e-9
        events = (final.get("journal") or {}).get("frames") or 0
        result["market_day"] = {
            # input events = journal frames: in process mode the parent's bridge counts only the last child's
            "target_trades": target, "trades": result["trades"], "input_events": events,
            "valkey_inputs_written": (final.get("valkey") or {}).get("inputs_written"),
            "elapsed_s": final.get("elapsed_s"), "trades_per_s": round(result["trades"] / elapsed),
            "events_per_s": round(events / elapsed),
            "offered_rate_per_ticker": overrides.get("simulator.rate"), "after_close": final.get("settle")}
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
    if target:
        checks["trade_target_reached"] = bool(final.get("target_reached"))
    if args.chaos or target:
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
