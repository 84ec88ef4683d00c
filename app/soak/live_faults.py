"""`python -m app soak --live [--rounds N]`: live trading on the stand-in's broker through rounds of mixed faults,
judged from outside.

Every round is one app process (app.soak.live_round) trading on the same broker (the stand-in's state file) and
the same data dir (send ledger, journals), so each round starts where the previous one left the account. Rounds
cycle through three kinds:
  hostile  thread mode; the stand-in duplicates and reorders order updates and drops the routing connection
           while resting orders of ours work (each drop forces a reconciliation)
  child    process isolation; the feed child is killed twice while orders flow, and one child dies inside a
           SendOrder (before the DLL got it, after the DLL took it with no answer written, or after the answer
           was written but never reached us; in turn)
  crash    thread mode; the app is killed (os._exit(9)) in the middle of trading, orders and position open; the
           next round restarts on what it left
Every round but a crash ends with flatten, and a last short round restarts on what the rounds left and flattens,
so the account ends flat. Judged per round and overall:
  duplicate orders      orders at the broker that no intent explains (neither the run's book nor the send
                        ledger, which holds one local id per client id): must be 0
  sent while disagreeing  from the routing journals: orders that got a local id after reconciliation disagreed
                        and before flatten: must be 0
  position              broker = ours after each flatten, and 0 at the end
  faults                at least 100 injected, of every kind
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KINDS = ("hostile", "child", "crash")
ROUTE_EXITS = ("before", "inside", "after")
DISAGREED = "broker and journal differ"
MIN_FAULTS = 100


def round_args(i: int, data_dir: str, broker_file: str, seconds: float, last: bool = False
               ) -> tuple[str, dict[str, Any]]:
    kind = "final" if last else KINDS[i % len(KINDS)]
    over: dict[str, Any] = {"run.data_dir": data_dir, "simulator.routing_state_file": broker_file,
                            "journal.enabled": True, "simulator.seed": 1000 + i}
    args: dict[str, Any] = {"seconds": seconds, "flatten": True, "overrides": over}
    if kind == "hostile":
        over.update({"simulator.routing_dup_rate": 0.3, "simulator.routing_reorder_rate": 0.3,
                     "simulator.routing_drop_rate": 1.0, "simulator.routing_drop_ms": 300})
        args["resting"] = 6
    elif kind == "child":
        over.update({"feed.isolation": "process", "feed.restart_backoff": 0.2})
        where = ROUTE_EXITS[(i // len(KINDS)) % len(ROUTE_EXITS)]
        args.update({"kill_child": 2, "child_faults": [[], [], [f"route-exit:3:{where}"], []]})
    elif kind == "crash":
        args.update({"crash": True, "flatten": False})
    return kind, args


def run_round(args: dict[str, Any], timeout: float) -> tuple[int, dict[str, Any], str]:
    p = subprocess.run([sys.executable, "-m", "app.soak.live_round", json.dumps(args)], timeout=timeout,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    out: dict[str, Any] = {}
    if p.returncode == 0 and p.stdout.strip():
        out = json.loads(p.stdout.strip().splitlines()[-1])
    return p.returncode, out, p.stderr[-2000:]


def sent_while_disagreeing(journal_root: Path) -> tuple[int, int]:
    """(orders that got a local id while reconciliation disagreed, disagreements) over every run's routing journal."""
    from app.events import KillSwitch, OrderSent
    from app.execution.order_book import TAKEN_OVER
    from app.execution.routing_journal import read_routed

    sent = disagreements = 0
    for run_dir in sorted(d for d in journal_root.iterdir() if d.is_dir()):
        stopped = False
        for r in read_routed(run_dir):
            ev = r.event
            if type(ev) is KillSwitch:
                if ev.why.startswith(DISAGREED):
                    stopped = True
                    disagreements += 1
                elif ev.why == "flatten":
                    stopped = False  # the operator's flatten sends on purpose: not counted
            elif type(ev) is OrderSent and stopped and ev.local_id > 0 and ev.why != TAKEN_OVER:
                sent += 1
    return sent, disagreements


def soak(rounds: int, seconds: float, timeout: float, report: Any = print) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="hmarl-live-faults-"))
    data_dir, broker = str(work / "data"), str(work / "broker.bin")
    faults = {"duplicated updates": 0, "reordered updates": 0, "routing drops with orders working": 0,
              "feed child killed": 0, "feed child died inside SendOrder": 0, "app kill -9 and restart": 0}
    rows, failures = [], []
    totals = {"sent": 0, "refused": 0, "dup_orders": 0, "reconciliations": 0, "unknown": 0}
    for i in range(rounds + 1):
        kind, args = round_args(i, data_dir, broker, seconds if i < rounds else 2.0, last=i == rounds)
        t0 = time.monotonic()
        code, out, err = run_round(args, timeout)
        row = {"round": i + 1, "kind": kind, "seconds": round(time.monotonic() - t0, 1), "exit": code}
        if kind == "crash":
            if code != 9:
                failures.append(f"round {i + 1} (crash): exit {code}, expected 9: {err[-300:]}")
            faults["app kill -9 and restart"] += 1
            rows.append(row)
            report(f"round {i + 1:3d} {kind:8s} killed (exit {code}) in {row['seconds']} s")
            continue
        if code != 0:
            failures.append(f"round {i + 1} ({kind}): exit {code}: {err[-300:]}")
            rows.append(row)
            report(f"round {i + 1:3d} {kind:8s} FAILED exit {code}")
            continue
        inj = out.get("injected", {})
        faults["duplicated updates"] += inj.get("dups", 0)
        faults["reordered updates"] += inj.get("reorders", 0)
        faults["routing drops with orders working"] += inj.get("drops", 0)
        if kind == "child":
            faults["feed child killed"] += args["kill_child"]
            faults["feed child died inside SendOrder"] += max(0, out.get("children", 1) - 1 - args["kill_child"])
        for k in totals:
            totals[k] += int(out.get(k, 0))
        equal = out.get("broker") == out.get("ours") and not any(out.get("broker", {}).values())
        row.update({k: out.get(k) for k in ("sent", "refused", "reconciliations", "dup_orders", "reconciled")})
        row.update({"broker": out.get("broker"), "ours": out.get("ours"), "flat_and_equal": equal})
        rows.append(row)
        if out.get("dup_orders"):
            failures.append(f"round {i + 1} ({kind}): {out['dup_orders']} orders at the broker no intent explains")
        if not equal:
            failures.append(f"round {i + 1} ({kind}): after flatten broker {out.get('broker')} vs ours "
                            f"{out.get('ours')}")
        report(f"round {i + 1:3d} {kind:8s} sent {out.get('sent', 0):4d} refused {out.get('refused', 0):4d} "
               f"reconciliations {out.get('reconciliations', 0):2d} dup {out.get('dup_orders', 0)} "
               f"broker {out.get('broker')} ours {out.get('ours')} ({row['seconds']} s)")
    journal_root = Path(data_dir) / "journal"
    sent_bad, disagreements = sent_while_disagreeing(journal_root) if journal_root.is_dir() else (0, 0)
    if sent_bad:
        failures.append(f"{sent_bad} orders got a local id while reconciliation disagreed")
    total_faults = sum(faults.values())
    if total_faults < MIN_FAULTS:
        failures.append(f"only {total_faults} faults injected (goal: {MIN_FAULTS}); run more --rounds")
    missing = [k for k, v in faults.items() if not v]
    if missing:
        failures.append(f"no fault of kind: {', '.join(missing)}")
    return {"rounds": rows, "faults": faults, "total_faults": total_faults, "totals": totals,
            "sent_while_disagreeing": sent_bad, "disagreements": disagreements, "failures": failures,
            "ok": not failures, "work_dir": str(work)}


def render(result: dict[str, Any]) -> str:
    lines = ["| fault | injected |", "|---|---:|"]
    lines += [f"| {k} | {v:,} |" for k, v in result["faults"].items()]
    lines.append(f"| **total** | **{result['total_faults']:,}** |")
    t = result["totals"]
    lines += ["", "| check | result |", "|---|---|",
              f"| orders sent / refused | {t['sent']:,} / {t['refused']:,} |",
              f"| reconciliations (disagreements) | {t['reconciliations']} ({result['disagreements']}) |",
              f"| sends whose answer was lost, settled by reconciliation | {t['unknown']} |",
              f"| duplicate orders at the broker | {t['dup_orders']} |",
              f"| orders sent while reconciliation disagreed | {result['sent_while_disagreeing']} |",
              "| broker = ours = 0 after every flatten | "
              + ("yes" if all(r.get("flat_and_equal", True) for r in result["rounds"]) else "NO") + " |"]
    lines.append("")
    lines.append("PASS" if result["ok"] else "FAIL: " + "; ".join(result["failures"]))
    return "\n".join(lines)
