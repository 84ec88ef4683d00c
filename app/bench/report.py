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

try:  # rich is a dependency of the app; plain text keeps the bench usable without it
    from rich.console import Console
    from rich.table import Table
except ImportError:  # pragma: no cover
    Console = Table = None  # type: ignore[assignment,misc]

GOAL_CEILING_SHARE = 0.5  # ours sustains >= 50 % of the kept-alive floor
GOAL_VS_PROCESS = 10.0  # >= 10x the throughput and <= 1/10 of the p99 of design d
DISTURBED_CORES = 0.25  # other processes' CPU during a point above which its tails are flagged
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
def _goal(met: bool, figure: str, target: str, **values: Any) -> dict[str, Any]:
    return {"met": bool(met), "figure": figure, "target": target, **values}


def floor_ratios(section: dict[str, Any]) -> None:
    """Nothing to add: floor.run computes its ratios itself (kept / default, event / tuple, ceiling / native)."""


def bridge_ratios(section: dict[str, Any]) -> None:
    pts = section["points"]
    ceiling = section["ceiling"]["rate"]
    rates = section["rates"]
    paced = [r for r in rates if r != "full"]

    def p99(design: str, rate: str) -> float:
        return pts[design][rate]["latency"]["p99_us"]

    def thr(design: str, rate: str = "full") -> float:
        return pts[design][rate]["throughput"]

    def div(x: float, y: float) -> float | None:
        return x / y if y else None

    ratios: dict[str, Any] = {
        "a_over_ceiling": div(thr("a"), ceiling),
        "a_over_d_throughput": div(thr("a"), thr("d")),
        "a_over_a0_throughput": div(thr("a"), thr("a0")),
        "a_over_b_throughput": div(thr("a"), thr("b")),
        "a_over_c_throughput": div(thr("a"), thr("c")),
        "d_p99_over_a_p99": {r: div(p99("d", r), p99("a", r)) for r in rates},
        "a0_p99_over_a_p99": {r: div(p99("a0", r), p99("a", r)) for r in rates},
        "cpu_us_per_event": {dsg: {r: pts[dsg][r]["cpu_us_per_event"] for r in rates} for dsg in pts},
    }
    section["ratios"] = ratios
    share = ratios["a_over_ceiling"] or 0.0
    vs_d = ratios["a_over_d_throughput"] or 0.0
    lat = {r: ratios["d_p99_over_a_p99"][r] or 0.0 for r in paced}
    lat_text = ", ".join(f"{r}/s: d p99 {p99('d', r):g} us / a p99 {p99('a', r):g} us = {lat[r]:.1f}x"
                         for r in paced)
    section["goals"] = {
        "bridge_vs_floor": _goal(
            share >= GOAL_CEILING_SHARE,
            f"a at full speed {thr('a'):,.0f}/s = {share:.0%} of the kept-alive floor {ceiling:,.0f}/s",
            f">= {GOAL_CEILING_SHARE:.0%} of the kept-alive floor, same run", value=share),
        "throughput_vs_process": _goal(
            vs_d >= GOAL_VS_PROCESS,
            f"a {thr('a'):,.0f}/s vs d {thr('d'):,.0f}/s at full speed = {vs_d:.1f}x",
            f">= {GOAL_VS_PROCESS:g}x the throughput of design d, same run", value=vs_d),
        "p99_vs_process": _goal(
            all(v >= GOAL_VS_PROCESS for v in lat.values()), lat_text,
            f"<= 1/{GOAL_VS_PROCESS:g} of the p99 of design d at every paced rate, same run "
            "(at full speed both are queueing at different rates; that ratio is reported, not judged)",
            value={r: v for r, v in lat.items()}),
    }
    switch = section.get("switch_interval") or {}
    for design, by_si in (switch.get("points") or {}).items():
        base = by_si.get(f"{sys.getswitchinterval():g}") or by_si.get("0.005")
        if not base:
            continue
        for out in by_si.values():
            lat_ = out["latency"]
            out["p99_vs_default"] = div(lat_["p99_us"], base["latency"]["p99_us"])
            out["p999_vs_default"] = div(lat_["p999_us"], base["latency"]["p999_us"])


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


# ------------------------------------------------------------------------------------------------ printing
class Printer:
    """rich tables when rich is there, aligned plain text otherwise."""

    def __init__(self, plain: bool = False) -> None:
        self.console = None if plain or Console is None else Console(highlight=False, width=140)

    def line(self, text: str = "") -> None:
        if self.console is not None:
            self.console.print(text, markup=False)
        else:
            print(text)

    def table(self, title: str, columns: list[str], rows: list[list[str]]) -> None:
        if self.console is not None:
            t = Table(title=title, title_justify="left")
            for i, c in enumerate(columns):
                t.add_column(c, justify="left" if i == 0 else "right")
            for r in rows:
                t.add_row(*r)
            self.console.print(t)
            return
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
        print(title)
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths))))
        for r in rows:
            print("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
        print()


def _n(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _runs(out: dict[str, Any]) -> str:
    return "/".join(f"{r / 1e3:,.0f}k" for r in out.get("runs", [])) or "-"


def _others(out: dict[str, Any]) -> str:
    v = out.get("others_cores")
    return "-" if v is None else f"{v:.2f}"


def _lat(lat: dict[str, Any]) -> list[str]:
    return [f"{lat['p50_us']:g}", f"{lat['p99_us']:g}", f"{lat['p999_us']:g}", f"{lat['max_us']:g}"]


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


def render_bridge(p: Printer, s: dict[str, Any]) -> None:
    for key, text in s["designs"].items():
        p.line(f"  {key:<3} {text}")
    rows = []
    for rate in s["rates"]:
        for design, by_rate in s["points"].items():
            out = by_rate[rate]
            batch = out.get("bridge", {}).get("mean_batch")
            rows.append([f"{design} @ {rate}", _n(out["throughput"]), *_lat(out["latency"]), str(out["lost"]),
                         _n(out["cpu_us_per_event"], 2), "-" if batch is None else f"{batch:g}", _others(out)])
    sz = s["sizes"]
    p.table(f"bridge ({s['api'].upper()} callback, {s['loop']}; paced {sz['seconds']:g} s + {sz['warmup']:g} s "
            f"warm-up per point, full speed {sz['events']:,} events)",
            ["design @ rate/s", "events/s", "p50 us", "p99 us", "p999 us", "max us", "lost", "cpu us/ev",
             "batch", "others cores"], rows)
    full = [f"{d} {_runs(by_rate['full'])}" for d, by_rate in s["points"].items() if "full" in by_rate]
    p.line(f"full-speed runs (median of {s.get('repeat', 1)} kept): " + "; ".join(full))
    r = s["ratios"]
    p.line(f"ceiling (floor tuple, kept thread state, this run): {s['ceiling']['rate']:,.0f}/s")
    p.line(f"a / ceiling {r['a_over_ceiling']:.2f}   a / d throughput {r['a_over_d_throughput']:.1f}x   "
           f"a / a0 {r['a_over_a0_throughput']:.1f}x   a / b {r['a_over_b_throughput']:.2f}x   "
           f"a / c {r['a_over_c_throughput']:.2f}x")
    p.line("d p99 / a p99: " + ", ".join(f"{k} {_n(v, 1)}x" for k, v in r["d_p99_over_a_p99"].items()))
    p.line("a0 p99 / a p99: " + ", ".join(f"{k} {_n(v, 1)}x" for k, v in r["a0_p99_over_a_p99"].items()))
    switch = s.get("switch_interval") or {}
    if switch.get("points"):
        rows = []
        for design, by_si in switch["points"].items():
            for si, out in by_si.items():
                runs = "/".join(f"{v:g}" for v in out.get("runs_p99_us", [])) or "-"
                rows.append([f"{design} @ {float(si) * 1e3:g} ms", _n(out["throughput"]), *_lat(out["latency"]),
                             _n(out["cpu_us_per_event"], 2), _n(out.get("p99_vs_default"), 2),
                             _n(out.get("p999_vs_default"), 2), runs, _others(out)])
        p.table(f"sys.setswitchinterval at {switch['rate']}/s (each figure the median of {s.get('repeat', 1)} "
                "interleaved runs)", ["design @ interval", "events/s", "p50 us", "p99 us", "p999 us", "max us",
                                      "cpu us/ev", "p99/default", "p999/default", "runs p99 us", "others cores"],
                rows)
    disturbed = [f"{d}@{r}" for d, by_rate in s["points"].items() for r, out in by_rate.items()
                 if (out.get("others_cores") or 0) > DISTURBED_CORES]
    if disturbed:
        p.line(f"note: other processes took > {DISTURBED_CORES:g} cores during {len(disturbed)} points "
               f"({', '.join(disturbed)}): their tails say as much about the neighbours as about the design")
    render_goals(p, s.get("goals", {}))


def render_goals(p: Printer, goals: dict[str, Any]) -> None:
    for name, g in goals.items():
        p.line(f"goal {name}: {'MET' if g['met'] else 'NOT MET'} - {g['figure']} (target {g['target']})")
    if goals:
        p.line()


def render_generic(p: Printer, s: dict[str, Any]) -> None:
    for k, v in s.items():
        p.line(f"  {k}: {v}")
    p.line()


def render_pipeline(p: Printer, s: dict[str, Any]) -> None:
    rows = []
    for rate in s["rates"]:
        o = s["points"][rate]
        lat = o["callback_to_decision"]
        rows.append([rate, _n(o["trades_per_s"]), _n(o["events_per_s"]), _n(o.get("events_per_s_all_written")),
                     *_lat(lat), _n(o["cpu_percent"], 1), _n(o["rss_mb"], 1), _n(o["bridge_max_depth"]),
                     _n(o["valkey_max_backlog"]), f"{o['zmq_dropped']}/{o['zmq_sent']}"])
    p.table("pipeline: everything on (specialists, coordinator, paper executor, journal, Valkey, ZMQ + subscriber)",
            ["trades/s offered", "trades/s", "events/s", "events/s written", "cb->decision p50 us", "p99", "p999",
             "max", "CPU % core", "RSS MB", "bridge max", "valkey max backlog", "zmq dropped/sent"], rows)
    p.line(f"  {s.get('note', '')}; full-speed runs (events/s written): {s['points']['full'].get('runs_events_per_s')}")
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
           + (f"; workers at nice {machine['nice']}" if machine.get("nice") is not None else ""))
