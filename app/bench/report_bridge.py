"""`bench bridge`: ratios, goals and tables of the hand-off designs (app/bench/bridge.py), all from one run."""
from __future__ import annotations

import sys
from typing import Any

from app.bench.tables import DISTURBED_CORES, Printer, _goal, _lat, _n, _others, _runs, render_goals

GOAL_CEILING_SHARE = 0.5  # ours sustains >= 50 % of the kept-alive floor
GOAL_VS_PROCESS = 10.0  # >= 10x the throughput and <= 1/10 of the p99 of design d
GOAL_DWELL_P99_US = 2.0  # native ring: the DLL's thread inside our callback, p99
GOAL_DWELL_MAX_US = 50.0  # ... and max


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
    if "n" in pts:
        native_goals(section, thr, div)
    switch = section.get("switch_interval") or {}
    for design, by_si in (switch.get("points") or {}).items():
        base = by_si.get(f"{sys.getswitchinterval():g}") or by_si.get("0.005")
        if not base:
            continue
        for out in by_si.values():
            lat_ = out["latency"]
            out["p99_vs_default"] = div(lat_["p99_us"], base["latency"]["p99_us"])
            out["p999_vs_default"] = div(lat_["p999_us"], base["latency"]["p999_us"])


def native_goals(section: dict[str, Any], thr: Any, div: Any) -> None:
    """Issue 12's goals for the native ring (design n), against the ctypes path (a), the floor and design d."""
    pts, ceiling, rates = section["points"], section["ceiling"]["rate"], section["rates"]
    ratios = section["ratios"]
    ratios.update({"n_over_ceiling": div(thr("n"), ceiling), "n_over_d_throughput": div(thr("n"), thr("d")),
                   "n_over_a_throughput": div(thr("n"), thr("a"))})
    dwell = {d: {r: pts[d][r].get("dll_dwell") or {} for r in rates} for d in ("n", "a")}
    ok = all(dwell["n"][r].get("p99_us", 1e9) <= GOAL_DWELL_P99_US and
             dwell["n"][r].get("max_us", 1e9) <= GOAL_DWELL_MAX_US for r in rates)

    def text(d: str) -> str:
        return ", ".join(f"{r}: {dwell[d][r].get('p99_us', '?')}/{dwell[d][r].get('max_us', '?')}" for r in rates)

    floor = section.get("dwell_floor") or {}
    under = "; an empty C callback (this machine's floor) " + ", ".join(
        f"{r}: {d.get('p99_us', '?')}/{d.get('max_us', '?')}" for r, d in floor.items()) if floor else ""
    goals = section["goals"]
    goals["native_dwell"] = _goal(
        ok, f"DLL-side dwell p99/max us, native (n) {text('n')}; ctypes (a) {text('a')}{under}",
        f"native p99 <= {GOAL_DWELL_P99_US:g} us and max <= {GOAL_DWELL_MAX_US:g} us at every rate, as the stand-in "
        "times its callbacks", value=dwell)
    share = ratios["n_over_ceiling"] or 0.0
    goals["native_vs_ceiling"] = _goal(
        share >= 1.0, f"n at full speed {thr('n'):,.0f}/s = {share:.2f}x the kept-alive ctypes floor {ceiling:,.0f}/s",
        ">= 1x the kept-alive ctypes callback ceiling, same run (no Python callback can be faster)", value=share)
    vs_d = ratios["n_over_d_throughput"] or 0.0
    goals["native_vs_process"] = _goal(
        vs_d >= GOAL_VS_PROCESS, f"n {thr('n'):,.0f}/s vs d {thr('d'):,.0f}/s at full speed = {vs_d:.1f}x",
        f">= {GOAL_VS_PROCESS:g}x the throughput of design d, same run", value=vs_d)


def render_bridge(p: Printer, s: dict[str, Any]) -> None:
    for key, text in s["designs"].items():
        p.line(f"  {key:<3} {text}")
    if s.get("dwell_floor"):
        p.line(f"  {s.get('floor_description', 'z: an empty C callback')}")
    rows = []
    for rate in s["rates"]:
        for design, by_rate in s["points"].items():
            out = by_rate[rate]
            batch = out.get("bridge", {}).get("mean_batch")
            dwell = out.get("dll_dwell") or {}
            rows.append([f"{design} @ {rate}", _n(out["throughput"]), *_lat(out["latency"]), str(out["lost"]),
                         _n(out["cpu_us_per_event"], 2), "-" if batch is None else f"{batch:g}",
                         f"{dwell.get('p50_us', '-')}/{dwell.get('p99_us', '-')}/{dwell.get('max_us', '-')}",
                         _others(out)])
    for rate, dwell in (s.get("dwell_floor") or {}).items():  # older runs have none
        rows.append([f"z @ {rate}", *["-"] * 8,
                     f"{dwell.get('p50_us', '-')}/{dwell.get('p99_us', '-')}/{dwell.get('max_us', '-')}", "-"])
    sz = s["sizes"]
    p.table(f"bridge ({s['api'].upper()} callback, {s['loop']}; paced {sz['seconds']:g} s + {sz['warmup']:g} s "
            f"warm-up per point, full speed {sz['events']:,} events)",
            ["design @ rate/s", "events/s", "p50 us", "p99 us", "p999 us", "max us", "lost", "cpu us/ev",
             "batch", "dwell p50/p99/max us", "others cores"], rows)
    full = [f"{d} {_runs(by_rate['full'])}" for d, by_rate in s["points"].items() if "full" in by_rate]
    p.line(f"full-speed runs (median of {s.get('repeat', 1)} kept): " + "; ".join(full))
    r = s["ratios"]
    p.line(f"ceiling (floor tuple, kept thread state, this run): {s['ceiling']['rate']:,.0f}/s")
    p.line(f"a / ceiling {r['a_over_ceiling']:.2f}   a / d throughput {r['a_over_d_throughput']:.1f}x   "
           f"a / a0 {r['a_over_a0_throughput']:.1f}x   a / b {r['a_over_b_throughput']:.2f}x   "
           f"a / c {r['a_over_c_throughput']:.2f}x")
    p.line("d p99 / a p99: " + ", ".join(f"{k} {_n(v, 1)}x" for k, v in r["d_p99_over_a_p99"].items()))
    if "n_over_ceiling" in r:
        p.line(f"n / ceiling {r['n_over_ceiling']:.2f}   n / d throughput {r['n_over_d_throughput']:.1f}x   "
               f"n / a {r['n_over_a_throughput']:.2f}x   (dwell: the DLL's thread inside the callback, timed by "
               "the stand-in)")
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
