"""bench stages, spacing: what the loop pays per event when events arrive apart rather than back to back.

The same recorded events, in batches of BATCH, go through a real Pipeline (journal, embedded Valkey, ZMQ on an
ephemeral port) three ways, interleaved round by round: back to back (the loop yields once between batches),
1 ms apart and 10 ms apart (the loop sleeps between them, as it does live at ~3,000 and ~300 events/s). Measured
with the thread's CPU clock: on_batch (the hierarchy and the output calls) and the whole loop thread over the phase
(the output tasks' own writes included). on_batch runs the same instructions per event in the three; what changes
is what the caches, branch predictors and TLB still hold when the next batch comes - on a VM that sleeps its idle
vCPU, little. The loop thread's figure adds the output tasks, whose 50 ms intervals weigh more per event the sparser
the events. Together they set the CPU the pipeline needs at low rates (issue 12's 200 events/s goal).
"""
from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from statistics import median
from typing import Any

BATCH = 3  # events per batch: what the native ring hands the loop at a few hundred events/s
GAPS_MS = (0.0, 1.0, 10.0)
WARM_EVENTS = 2_000
COLD_NODES = 512  # 32 KB: L1/L2-sized, 0.7 us back to back on the reference machine
COLD_PAUSES = ((0.0, False), (1.0, False), (10.0, False), (10.0, True))  # (ms, spinning instead of asleep)
COLD_REPS = 400


async def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    from app import config as config_mod
    from app import pipeline as pipeline_module
    from app.bench.pipeline import _overrides
    from app.events import Book, Trade
    from app.io.journal import read_journal

    events = list(read_journal(cfg["journal"]))
    rounds, per_phase = int(cfg["rounds"]), int(cfg["batches"])
    need = WARM_EVENTS + rounds * len(GAPS_MS) * per_phase * BATCH
    if len(events) < need:  # a short recording (--quick): fewer batches per phase, never fewer than 20
        per_phase = max(20, (len(events) - WARM_EVENTS) // (rounds * len(GAPS_MS) * BATCH))
    data_dir = tempfile.mkdtemp(prefix="hmarl-bench-spacing-")
    try:
        pipe = pipeline_module.Pipeline(config_mod.load(None, _overrides(data_dir, None, 0)), fresh=True)
        await pipe.start()
        try:
            for ev in events:
                if type(ev) is Trade or type(ev) is Book:
                    pipe.hierarchy.desk(ev.ticker)  # type: ignore[union-attr]
            on_batch, at = pipe.on_batch, 0
            while at < WARM_EVENTS:
                on_batch(events[at:at + BATCH])
                at += BATCH
                await asyncio.sleep(0)
            runs: dict[float, list[tuple[float, float]]] = {g: [] for g in GAPS_MS}
            for _ in range(rounds):
                for gap in GAPS_MS:
                    pause = gap / 1e3
                    n, in_batch = 0, 0.0
                    loop0 = time.thread_time()
                    for _ in range(per_phase):
                        chunk = events[at % len(events):at % len(events) + BATCH] or events[:BATCH]
                        at += BATCH
                        await asyncio.sleep(pause)
                        t = time.thread_time()
                        on_batch(chunk)
                        in_batch += time.thread_time() - t
                        n += len(chunk)
                    await asyncio.sleep(pause)  # the phase's last writes land inside it, as every other's did
                    runs[gap].append((1e6 * in_batch / n, 1e6 * (time.thread_time() - loop0) / n))
        finally:
            await pipe.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return {"batch": BATCH, "batches_per_phase": per_phase, "rounds": rounds, "machine": machine_cold(),
            "gaps": [{"gap_ms": g, "on_batch_us": median(r[0] for r in runs[g]),
                      "loop_us": median(r[1] for r in runs[g]),
                      "runs_on_batch_us": [r[0] for r in runs[g]], "runs_loop_us": [r[1] for r in runs[g]]}
                     for g in GAPS_MS]}


def machine_cold() -> dict[str, Any] | None:
    """The same yardstick without Python: a fixed C walk over COLD_NODES cache lines after each kind of pause (None
    when the native ring is not built). Asleep against spinning tells the idle vCPU apart from the time passing."""
    from app.feed.native import ring

    native = ring.get()
    if native is None:
        return None
    out: dict[str, Any] = {"nodes": COLD_NODES, "pauses": []}
    for gap_ms, spin in COLD_PAUSES:
        ns = native.cold_walk(COLD_NODES, gap_ms / 1e3, spin, COLD_REPS if gap_ms < 10 else COLD_REPS // 4)
        out["pauses"].append({"gap_ms": gap_ms, "spin": spin, "median_us": median(ns) / 1e3,
                              "p90_us": sorted(ns)[int(0.9 * (len(ns) - 1))] / 1e3})
    return out


def render(p: Any, s: dict[str, Any]) -> None:
    rows = []
    hot = s["gaps"][0]
    for g in s["gaps"]:
        rows.append([("back to back" if not g["gap_ms"] else f"{g['gap_ms']:g} ms apart"),
                     f"{g['on_batch_us']:.1f}", f"{g['on_batch_us'] / hot['on_batch_us']:.2f}×",
                     f"{g['loop_us']:.1f}", f"{g['loop_us'] / hot['loop_us']:.2f}×",
                     ", ".join(f"{v:.0f}" for v in g["runs_loop_us"])])
    p.table(f"stages, spacing: CPU per event on the loop thread, the same events in batches of {s['batch']} "
            f"({s['batches_per_phase']} batches a phase, {s['rounds']} rounds interleaved, the median shown)",
            ["batches arrive", "on_batch µs/event", "vs back to back", "loop thread µs/event", "vs back to back",
             "loop thread, each round"], rows)
    p.line("  on_batch runs the same instructions per event in every row: what grows is their cost on caches, branch "
           "predictors and a TLB that went cold while the loop slept; the loop thread adds the output tasks, whose "
           "50 ms intervals weigh more per event the sparser the events")
    m = s.get("machine")  # older runs have none
    if m:
        hot = m["pauses"][0]["median_us"]
        cells = [f"{_pause(c)} {c['median_us']:.1f} / {c['p90_us']:.1f} ({c['median_us'] / hot:.0f}×)"
                 for c in m["pauses"]]
        p.line(f"  the machine without Python, a fixed C walk over {m['nodes']} cache lines (median / p90 µs): "
               + "; ".join(cells))
    p.line()


def _pause(c: dict[str, Any]) -> str:
    if not c["gap_ms"]:
        return "back to back"
    return f"{c['gap_ms']:g} ms {'spinning' if c['spin'] else 'asleep'}"
