"""Tables, ratios, goals and the one JSON object of `python -m app bench`.

A section returns a plain dict; `ratios_and_goals` adds what compares its points (always within the same run);
`render` prints a section with its own renderer, or a generic key/value dump for sections without one (so a new
section shows up before anyone writes its table).
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from app.bench import spacing
from app.bench.report_bridge import bridge_ratios, render_bridge
from app.bench.tables import Printer, _goal, _lat, _n, _others, _runs, render_goals

ROUTING_LOAD_SHARE = 0.9  # a routing point counts as loaded when the flow reached this share of the offered rate


# ------------------------------------------------------------------------------------------------ machine
def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "switchinterval_default": sys.getswitchinterval(),
    }
    try:
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import uvloop

        info["uvloop"] = uvloop.__version__
    except ImportError:
        pass
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                        timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


# ------------------------------------------------------------------------------------------------ ratios/goals
def floor_ratios(section: dict[str, Any]) -> None:
    """Nothing to add: floor.run computes its ratios itself (kept / default, event / tuple, ceiling / native)."""


def routing_ratios(section: dict[str, Any]) -> None:
    """How much the market flow adds to decision -> SendOrder (same run), and whether the load was the one asked."""
    pts = section["points"]
    quiet = pts["none"]["decision_to_send"]
    loaded = [label for label in section["labels"] if pts[label]["rate"]]
    section["ratios"] = {f"{k}_over_no_flow": {label: pts[label]["decision_to_send"][k] / quiet[k] if quiet[k] else None
                                               for label in loaded} for k in ("p50_us", "p99_us", "p999_us")}
    real = {label: pts[label]["trades_per_s"] / pts[label]["rate"] for label in loaded}
    timed = all(pts[label]["decision_to_send"]["count"] for label in loaded)
    figure = "; ".join(f"{label} trades/s offered ({pts[label]['trades_per_s']:,.0f} achieved): p50 / p99 / p999 "
                       + " / ".join(f"{pts[label]['decision_to_send'][k]:g}" for k in ("p50_us", "p99_us", "p999_us"))
                       + " us" for label in loaded)
    section["goals"] = {"reported_under_load": _goal(
        timed and all(v >= ROUTING_LOAD_SHARE for v in real.values()), figure,
        f"p50 / p99 / p999 reported with the market flow at >= {ROUTING_LOAD_SHARE:.0%} of 1k and 5k trades/s",
        value=real)}


RATIOS: dict[str, Callable[[dict[str, Any]], None]] = {"floor": floor_ratios, "bridge": bridge_ratios,
                                                        "routing": routing_ratios}


def ratios_and_goals(name: str, section: dict[str, Any]) -> None:
    fn = RATIOS.get(name)
    if fn is not None:
        fn(section)


def render_floor(p: Printer, s: dict[str, Any]) -> None:
    rows = []
    for name, out in s["points"].items():
        rows.append([name, _n(out["rate"]), _n(out["ns_per_event"]), _n(out["events"]),
                     _n(out["cpu_seconds"] * 1e9 / out["events"]), _runs(out), _others(out)])
    p.table(f"floor: ctypes trade callbacks ({s['api'].upper()}) from the stand-in's native thread, full speed "
            f"(median of {s.get('repeat', 1)})",
            ["point", "callbacks/s", "ns/callback", "events", "cpu ns/event", "runs /s", "others cores"], rows)
    r = s["ratios"]
    p.line(f"kept / default thread state: tuple {r['tuple_kept_over_default']:.1f}x, "
           f"empty {r['empty_kept_over_default']:.1f}x; event / tuple (kept) {r['event_over_tuple_kept']:.2f}; "
           f"ceiling / native {r['ceiling_over_native']:.3f}")
    p.line(f"ceiling (tuple, kept thread state): {s['ceiling_rate']:,.0f}/s")
    p.line()


def render_generic(p: Printer, s: dict[str, Any]) -> None:
    for k, v in s.items():
        p.line(f"  {k}: {v}")
    p.line()


_SPLIT = ("loop", "owner", "other", "zmq", "files", "dll")


def render_pipeline(p: Printer, s: dict[str, Any]) -> None:
    rows = []
    for rate in s["rates"]:
        for path in s.get("paths", ["ctypes"]):
            o = s["points"][path][rate]
            lat, dwell = o["callback_to_decision"], o.get("dll_dwell") or {}
            where = f"~{rate[:-2]} events/s" if rate.endswith("ev") else rate
            rows.append([f"{path} @ {where}", _n(o["trades_per_s"]), _n(o["events_per_s"]),
                         _n(o.get("events_per_s_all_written")), *_lat(lat), _n(o["cpu_percent"], 1),
                         _n(o["rss_mb"], 1), _n(o["bridge_max_depth"]), _n(o["valkey_max_backlog"]),
                         f"{o['zmq_dropped']}/{o['zmq_sent']}",
                         f"{dwell.get('p99_us', '-')}/{dwell.get('max_us', '-')}"])
    p.table("pipeline: everything on (specialists, coordinator, paper executor, journal, Valkey, ZMQ + subscriber)",
            ["path @ trades/s offered", "trades/s", "events/s", "events/s written", "cb->decision p50 us", "p99",
             "p999", "max", "CPU % core", "RSS MB", "bridge max", "valkey max backlog", "zmq dropped/sent",
             "dwell p99/max us"], rows)
    runs = "; ".join(f"{path} {s['points'][path]['full'].get('runs_events_per_s')}" for path in s.get("paths", []))
    p.line(f"  {s.get('note', '')}; full-speed runs (events/s written): {runs}")
    split = [f"{path} @ {rate} " + "/".join(f"{by[k]:.1f}" for k in _SPLIT if k in by)
             for rate in s["rates"] for path in s.get("paths", ["ctypes"])
             if (by := s["points"][path][rate].get("cpu_by_thread"))]  # runs saved before it existed have none
    if split:
        p.line("  CPU % of a core by thread (loop/owner/rest, the rest as ZeroMQ's I/O/files/the DLL's threads): "
               + "; ".join(split))
    render_goals(p, s.get("goals", {}))


def render_outputs(p: Printer, s: dict[str, Any]) -> None:
    m = s["median"]
    rows = [[k, (_n(v, 2) if isinstance(v, float) and abs(v) < 100 else _n(v)) if isinstance(v, (int, float))
             else str(v)] for k, v in m.items()]
    p.table(f"median of {len(s['runs'])} runs", ["figure", "value"], rows)


def render_replay(p: Printer, s: dict[str, Any]) -> None:
    rows = [[label, _n(s[label]["events_per_s"]), "/".join(_n(r) for r in s[label]["runs"]),
             _n(s[label]["decisions"]), s[label]["digest"]] for label in ("compute_only", "with_outputs")]
    p.table(f"replay of {s['trades_recorded']:,} recorded trades ({s['live_decisions']} live decisions)",
            ["mode", "events/s", "runs", "decisions", "digest"], rows)
    p.line(f"  digests agree: {s['digests_agree']}")
    p.line()


def _triple(lat: dict[str, Any]) -> str:
    return " / ".join(f"{lat[k]:g}" for k in ("p50_us", "p99_us", "p999_us")) if lat["count"] else "-"


def render_routing(p: Printer, s: dict[str, Any]) -> None:
    rows, stages = [], []
    for label in s["labels"]:
        o = s["points"][label]
        st, h = o["stages"], o["hierarchy_decision_to_send"]
        rows.append([label, _n(o["trades_per_s"]), _n(o["sent"]), f"{o['refused']} / {o['rejected']}",
                     *_lat(o["decision_to_send"]), _n(o["cpu_percent"], 1), _others(o)])
        stages.append([label, _triple(st["queue"]), _triple(st["hop"]), _triple(st["call"]),
                       f"{h['count']}: {_triple(h)}" if h["count"] else "0"])
    p.table(f"routing: decision -> SendOrder returned on the DLL owner thread (each percentile the median of "
            f"{s['repeat']} interleaved runs of {s['seconds']:g} s + {s['warmup']:g} s warm-up)",
            ["market trades/s", "achieved", "orders sent", "refused / rejected", "p50 us", "p99 us", "p999 us",
             "max us", "CPU % core", "others cores"], rows)
    p.line("  the live App on the stand-in's broker: thread isolation, hierarchy + journal on, Valkey and ZMQ off")
    p.line(f"  load: {s['orders_per_s']} paced market orders/s of 1 contract through the live executors, tickers "
           "alternating, buy then sell per ticker")
    p.line("  from LiveLink.submit (the executor emitting the order) to a stamp on the owner thread after SendOrder")
    p.table("where the time goes, p50 / p99 / p999 us (bench-only stamps)",
            ["market trades/s", "queue", "hop", "call", "hierarchy's orders: n: p50 / p99 / p999"], stages)
    p.line("  queue: decision -> LiveLink's task calls send_order; hop: -> the owner thread starts the call;")
    p.line("  call: the send ledger's intent line + SendOrder")
    p.line("  hierarchy's orders: decided by the hierarchy itself mid-batch (many answer the paced orders' fills)")
    r = s.get("ratios", {})
    for k in ("p50_us", "p99_us", "p999_us"):
        by = r.get(f"{k}_over_no_flow") or {}
        p.line(f"  {k[:-3]} / no flow: " + ", ".join(f"{label} {_n(v, 1)}x" for label, v in by.items()))
    for label in s["labels"]:
        runs = s["points"][label]["per_run"]
        p.line(f"  runs @ {label}: " + "; ".join(f"{x['p50_us']:g} / {x['p99_us']:g} / {x['p999_us']:g} us, "
                                                  f"{x['trades_per_s']:,} trades/s" for x in runs))
    render_goals(p, s.get("goals", {}))


def render_stages(p: Printer, s: dict[str, Any]) -> None:
    t = s["totals"]
    loop = t["loop_us"]

    def spread(values: list[float]) -> str:
        if len(values) < 2:
            return "-"
        ordered = sorted(values)
        return f"{ordered[(len(ordered) - 1) // 2]:.2f} ({ordered[0]:.2f}-{ordered[-1]:.2f})"

    rows = [[r["stage"], f"{r['calls_per_event']:.3f}", f"{r['us_per_event']:.2f}", f"{r['of_on_batch']:.1%}",
             f"{r['of_loop']:.1%}", spread(r["runs_us"])] for r in s["rows"]]
    rows.append(["= on_batch (the stages above)", "", f"{t['on_batch_us']:.2f}", "100%",
                 f"{t['on_batch_us'] / loop:.1%}", spread(t["runs_on_batch_us"])])
    rows.append(["bridge drain (deque pops, stats, histogram)", f"{t['drain_calls_per_event']:.3f}",
                 f"{t['drain_overhead_us']:.2f}", "", f"{t['drain_overhead_us'] / loop:.1%}", "-"])
    rows.append(["= drain: the loop's work per wake-up", "", f"{t['drain_us']:.2f}", "", f"{t['drain_us'] / loop:.1%}",
                 spread(t["runs_drain_us"])])
    rows.append(["outside the drain (output tasks, metrics, loop)", "", f"{t['outside_us']:.2f}", "",
                 f"{t['outside_us'] / loop:.1%}", "-"])
    rows.append(["= the loop, per event", "", f"{loop:.2f}", "", "100%", "-"])
    b = s["batches"]
    p.table(f"stages: µs per event on the loop, one instrumented run of the real Pipeline (the median of {s['repeat']}"
            f"), {s['events']:,} events in {b['count']:,} batches as recorded live",
            ["stage", "calls/event", "µs/event", "% of on_batch", "% of loop", f"median of {s['repeat']} (min-max)"],
            rows)
    ins, plain = s["instrumented"], s["plain"]
    p.line(f"  events/s on the loop: instrumented {ins['events_per_s']:,.0f} (runs "
           f"{', '.join(f'{v:,.0f}' for v in ins['runs'])}), uninstrumented {plain['events_per_s']:,.0f} (runs "
           f"{', '.join(f'{v:,.0f}' for v in plain['runs'])}); uninstrumented / instrumented "
           f"{s['plain_over_instrumented']:.2f} (medians)")
    w = s["wrapper_ns"]
    p.line(f"  timers: {t['wrapped_calls_per_event']:.2f} wrapped calls per event at {w['total']:g} ns each "
           f"({w['inside']:g} inside the stage's window, {w['outside']:g} in its caller's; an empty function, same "
           f"process): {t['wrapper_overhead_us']:.2f} µs/event taken out")
    gap = t["on_batch_us"] - t["plain_on_batch_us"]
    p.line(f"  check: on_batch {t['on_batch_us']:.2f} µs/event instrumented and corrected vs "
           f"{t['plain_on_batch_us']:.2f} in the uninstrumented run ({gap:+.2f}: what the calibration did not "
           f"remove, plus run-to-run noise); drain {t['drain_us']:.2f} vs {t['plain_drain_us']:.2f}, loop "
           f"{loop:.2f} vs {t['plain_loop_us']:.2f}")
    p.line(f"  input: {s['trades_recorded']:,} trades recorded at full speed by the pipeline point "
           f"({s['live_events_per_s_all_written']:,.0f} events/s live, DLL thread included); batch sizes mean "
           f"{b['mean']:g}, median {b['median']}, p90 {b['p90']}, max {b['max']:,}")
    p.line(f"  lanes: {', '.join(s['lanes'])} (the pipeline runs no paper baseline lanes; eval and backtest do); "
           f"{s['decisions']:,} decisions in every run, digests agree: {s['digests_agree']}")
    p.line(f"  largest (medians of the runs): {'; '.join(s['largest'])}")
    p.line()
    if "spacing" in s:  # runs saved before it existed have none
        spacing.render(p, s["spacing"])


RENDERERS: dict[str, Callable[[Printer, dict[str, Any]], None]] = {
    "floor": render_floor, "bridge": render_bridge, "pipeline": render_pipeline, "valkey": render_outputs,
    "zmq": render_outputs, "replay": render_replay, "routing": render_routing, "stages": render_stages}


def render(p: Printer, name: str, section: dict[str, Any]) -> None:
    p.line(f"== bench {name} ==")
    RENDERERS.get(name, render_generic)(p, section)


def render_machine(p: Printer, machine: dict[str, Any]) -> None:
    p.line(f"{machine['date']}  {machine.get('cpu_model', machine['machine'])} x{machine['cpu_count']}  "
           f"Python {machine['python']}  {machine['platform']}  commit {machine.get('commit') or '?'}")
    p.line(f"load average {machine.get('load_start')} -> {machine.get('load_end')}; waited "
           f"{machine.get('waited_for_quiet_s', 0):g} s in all for other processes to go quiet"
           + (f"; workers at nice {machine['nice']}" if machine.get("nice") is not None else "")
           + ("; threads SCHED_BATCH (run.sched_batch)" if machine.get("sched") == "batch" else
              "; default scheduling policy (--sched default)" if machine.get("sched") == "default" else ""))
