"""bench stages: where the loop's time goes, in µs per event for each stage, from one run of the real Pipeline.

Input: the stand-in recorded once at full speed by the pipeline bench's own point (journal, ZMQ with a subscriber,
embedded Valkey), with the size of every batch the bridge handed to the loop. The measured runs feed those events
from the journal into a real Bridge, batch by batch in the recorded sizes, in front of a real Pipeline with every
output on (journal, embedded Valkey, ZMQ on tcp://127.0.0.1:0 with a live subscriber in another process). There is
no DLL thread in these runs: the loop has both cores' worth of GIL to itself, so the figures are the loop's own
cost, and the feeder's own time (filling the bridge's deque) is measured and left out.

Timers: in the instrumented run every stage's method is wrapped on its instance (a slotted instance gets a
subclass of its own that adds nothing but the wrappers); each wrapper keeps its *self* time (its elapsed time minus
that of the wrapped calls inside it), so the stages add up to the drain's wall time by construction. What the
wrappers themselves cost is calibrated in the same process on an empty function and taken out: the part inside a
timed window from the stage, the part outside it from the stage that called it. The uninstrumented run has two
timers per batch only (drain and on_batch), and its events/s stands beside the instrumented one's so the reader
sees what the timers cost and whether the corrected sum matches the uninstrumented wall.

Then the same recording in small batches back to back, 1 ms and 10 ms apart (app/bench/spacing.py): the CPU an event
costs the loop when events arrive apart, as they do at low rates.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any, Callable

from app.bench.worker import GAP_EVERY, Options, WorkerError, active_fault, spawn

BATCHES_FILE = "stages-batches.json"
ON_BATCH = "other in on_batch (digest, latency histograms)"
DRAIN = "bridge drain (deque pops, stats, histogram)"
CALIBRATION_CALLS = 20_000


# ------------------------------------------------------------------------------------------------ the timers
class Timers:
    """Self-time accumulators per stage: [self ns, calls, wrapped calls made from inside it]."""

    def __init__(self) -> None:
        self.running = [0, 0]  # elapsed ns and calls of the wrapped children of the call running now
        self.acc: dict[str, list[int]] = {}

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        acc = self.acc.setdefault(stage, [0, 0, 0])
        running = self.running
        clock = time.perf_counter_ns

        def timed(*args: Any) -> Any:
            outer_ns, outer_calls = running
            running[0] = running[1] = 0
            t0 = clock()
            result = fn(*args)
            elapsed = clock() - t0
            acc[0] += elapsed - running[0]
            acc[1] += 1
            acc[2] += running[1]
            running[0] = outer_ns + elapsed
            running[1] = outer_calls + 1
            return result
        return timed

    def on(self, obj: Any, methods: dict[str, str]) -> None:
        """Wrap `obj`'s methods (name -> stage) on this instance only."""
        try:
            for name, stage in methods.items():
                setattr(obj, name, self.wrap(stage, getattr(obj, name)))
        except AttributeError:  # __slots__: same layout, new class, so only this instance changes
            cls = type(obj)
            body: dict[str, Any] = {"__slots__": ()}
            for name, stage in methods.items():
                body[name] = self.wrap(stage, getattr(cls, name))
            obj.__class__ = type(cls.__name__, (cls,), body)

    def calibrate(self, rounds: int = 9) -> dict[str, float]:
        """ns per call: `call` (an empty function, what production pays too), `inside` (wrapper time inside a
        timed window, charged to the wrapped stage), `outside` (charged to its caller); minima over rounds, since
        noise only adds."""
        probe = Timers()

        def empty(x: Any) -> None:
            return None

        timed = probe.wrap("empty", empty)
        acc = probe.acc["empty"]
        clock, n = time.perf_counter_ns, CALIBRATION_CALLS
        loop = raw = wrapped = inner = float("inf")
        for _ in range(rounds):
            t0 = clock()
            for _ in range(n):
                pass
            t1 = clock()
            for _ in range(n):
                empty(1)
            t2 = clock()
            acc[0] = 0
            for _ in range(n):
                timed(1)
            t3 = clock()
            loop, raw = min(loop, t1 - t0), min(raw, t2 - t1)
            wrapped, inner = min(wrapped, t3 - t2), min(inner, acc[0])
        call = (raw - loop) / n
        total = (wrapped - raw) / n
        inside = inner / n - call
        return {"call": round(call, 1), "inside": round(inside, 1), "outside": round(total - inside, 1),
                "total": round(total, 1)}


def instrument(timers: Timers, pipe: Any, pipeline_module: Any) -> None:
    """Every stage on the loop, wrapped in the order the loop runs them (the table keeps that order)."""
    timers.on(pipe.continuity, {"observe": "continuity"})
    h = pipe.hierarchy
    desks = list(h.desks.values())
    for d in desks:
        timers.on(d.market, {"on_trade": "market state (book + trade)", "on_book": "market state (book + trade)"})
    for d in desks:
        for s in d.specialists:
            timers.on(s, {"on_trade": f"specialist {s.name}", "on_book": f"specialist {s.name}"})
    for d in desks:
        timers.on(d.regime, {"on_trade": "regime"})
        timers.on(d.learner, {"update": "learner: update"})
    timers.on(h, {"_score": "learner: scoring (Rewards)", "_decide": "decide: Decision/Order events",
                  "_on_trade": "hierarchy: per-trade glue (fan-out, queues)",
                  "on_batch": "hierarchy: dispatch (on_event, book fan-out)"})
    for d in desks:
        timers.on(d.active, {"add": "coordinator: active signals", "expire": "coordinator: active signals",
                             "active": "coordinator: active signals"})
        timers.on(d.coordinator, {"blend": "coordinator: blend + target", "target": "coordinator: blend + target",
                                  "reason": "coordinator: reason text"})
        for lane in d.lanes:
            timers.on(lane.policy, {"weights": f"coordinator: policy weights ({lane.name} lane)"})
            timers.on(lane.risk, {"vet": "risk gate", "price_ok": "risk gate"})
            if lane.executor is not None:
                stage = f"executor ({lane.name} lane, {'live' if lane.executor.live else 'paper'})"
                timers.on(lane.executor, {m: stage for m in ("execute", "on_trade", "position_event", "equity")})
    # a module global, looked up by Pipeline.on_batch at each call: the only stage that is not an instance method
    pipeline_module.encode_batch = timers.wrap("encode_batch (inputs + outputs)", pipeline_module.encode_batch)
    if pipe.journal is not None:
        timers.on(pipe.journal, {"append": "journal append"})
    if pipe.publisher is not None:
        timers.on(pipe.publisher, {"publish": "ZMQ publish"})
    if pipe.writer is not None:
        timers.on(pipe.writer, {"enqueue": "Valkey enqueue"})


# ------------------------------------------------------------------------------------------------ worker side
def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    from app.loops import run as run_loop

    if cfg["step"] == "record":
        return record(cfg)
    if cfg["step"] == "spacing":
        from app.bench import spacing

        return run_loop(lambda: spacing.measure(cfg))  # type: ignore[return-value]
    return run_loop(lambda: _measure(cfg))  # type: ignore[return-value]


def record(cfg: dict[str, Any]) -> dict[str, Any]:
    """The pipeline bench's full-speed point, unchanged but for the sizes of the batches the bridge delivered."""
    from app.bench import pipeline as pipeline_bench
    from app.feed import bridge as bridge_module
    from app.loops import run as run_loop

    sizes: list[int] = []
    plain_init = bridge_module.Bridge.__init__

    def sizing_init(self: Any, loop: Any, sink: Any, *args: Any, **kwargs: Any) -> None:
        def sized(batch: list[Any]) -> None:
            sizes.append(len(batch))
            sink(batch)
        plain_init(self, loop, sized, *args, **kwargs)

    # the App builds its Bridge inside the point, so its class is the only place to catch it (this process only)
    bridge_module.Bridge.__init__ = sizing_init  # type: ignore[method-assign]
    os.environ["HMARL_BENCH_KEEP"] = "1"  # the journal outlives the point: the measured runs read it
    point = pipeline_bench.pipeline_point
    out: dict[str, Any] = run_loop(lambda: point(None, 0.0, int(cfg["trades"]), 0.3))  # type: ignore[assignment]
    batches = Path(out["journal"]).parents[1] / BATCHES_FILE
    batches.write_text(json.dumps(sizes))
    return {"journal": out["journal"], "batches_file": str(batches), "events": sum(sizes),
            "total_trades": out["total_trades"], "decisions": out["decisions"], "gaps": out["gaps"],
            "violations": out["violations"], "events_per_s_all_written": out["events_per_s_all_written"]}


async def _measure(cfg: dict[str, Any]) -> dict[str, Any]:
    from app import config as config_mod
    from app import pipeline as pipeline_module
    from app.bench.pipeline import _overrides
    from app.events import Book, Trade
    from app.feed.bridge import Bridge
    from app.io.journal import read_journal

    events = list(read_journal(cfg["journal"]))
    sizes = json.loads(Path(cfg["batches_file"]).read_text())
    if sum(sizes) != len(events):
        raise WorkerError(f"the recording has {len(events)} events in the journal but {sum(sizes)} in its batches")
    fault = active_fault(cfg)
    chunks, at = [], 0
    for n in sizes:
        chunk = events[at:at + n]
        if fault == "gap":  # the bench's own smoke test: the continuity check must see the hole
            chunk = [ev for i, ev in enumerate(chunk, at + 1) if i % GAP_EVERY]
        at += n
        chunks.append(chunk)
    data_dir = tempfile.mkdtemp(prefix="hmarl-bench-stages-")
    sub = None
    try:
        pipe = pipeline_module.Pipeline(config_mod.load(None, _overrides(data_dir, None, 0)), fresh=True)
        await pipe.start()
        try:
            if fault == "crash":
                os.abort()
            sub = subprocess.Popen([sys.executable, "-m", "app.bench.pipeline", "subscriber", pipe.publisher.endpoint,
                                    "900"], stdout=subprocess.PIPE, text=True)
            assert sub.stdout is not None
            sub.stdout.readline()  # "ready"
            deadline = time.monotonic() + 10
            while not pipe.publisher.stats()["subscribed_prefixes"]:
                if time.monotonic() > deadline:
                    raise WorkerError("the ZMQ subscriber's subscription never reached the publisher")
                await asyncio.sleep(0.02)
            # desks exist before the wrappers go on; the first event of a ticker would create the same one
            for ev in events:
                if type(ev) is Trade or type(ev) is Book:
                    pipe.hierarchy.desk(ev.ticker)  # type: ignore[union-attr]
            timers = Timers()
            if cfg["instrument"]:
                instrument(timers, pipe, pipeline_module)
            on_batch = timers.wrap(ON_BATCH if cfg["instrument"] else "on_batch", pipe.on_batch)
            loop = asyncio.get_running_loop()
            bridge = Bridge(loop, on_batch)
            drain = bridge._drain = timers.wrap(DRAIN, bridge._drain)  # type: ignore[method-assign]
            queue, call_soon, clock = bridge._queue, loop.call_soon, time.perf_counter_ns
            feeder = 0
            t0 = clock()
            for chunk in chunks:
                f0 = clock()
                queue.extend(chunk)
                bridge._pending = True
                # the DLL thread's call_soon_threadsafe, minus its self-pipe write (a wake-up cost the bridge
                # section measures; here the loop never sleeps between batches)
                call_soon(drain)
                feeder += clock() - f0
                await asyncio.sleep(0)
            t1 = clock()
            acc = {k: list(v) for k, v in timers.acc.items()}  # the metrics task may publish while we wait below
            while pipe.writer.stats()["backlog"] and clock() - t1 < 120e9:
                await asyncio.sleep(0.002)
            t_written = clock()
            calibration = timers.calibrate()
            result = {"instrument": bool(cfg["instrument"]), "events": sum(map(len, chunks)), "batches": len(chunks),
                      "wall_ns": t1 - t0, "feeder_ns": feeder, "written_ns": t_written - t0,
                      "timers": acc, "wrapper_ns": calibration,
                      "gaps": pipe.continuity.gaps, "decisions": pipe.decisions,
                      "lanes": sorted({lane.name for d in pipe.hierarchy.desks.values() for lane in d.lanes}),
                      "decision_digest": pipe.digest.hexdigest(), "zmq": pipe.publisher.stats(),
                      "valkey_acked": pipe.writer.stats()["acked_seq"]}
        finally:
            await pipe.stop()
        if sub is not None:
            sub.terminate()
            lines = sub.communicate(timeout=10)[0].strip().splitlines()
            sub = None
            result["zmq_received_by_subscriber"] = json.loads(lines[-1])["received"] if lines else None
        return result
    finally:
        if sub is not None:
            sub.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ parent side
def corrected(out: dict[str, Any]) -> dict[str, Any]:
    """µs per event per stage with the wrappers' cost taken out, and the loop outside the drain."""
    w, n = out["wrapper_ns"], out["events"]
    stages: dict[str, float] = {}
    calls: dict[str, float] = {}
    overhead = 0.0
    for name, (self_ns, count, children) in out["timers"].items():
        stages[name] = (self_ns - count * w["inside"] - children * w["outside"]) / n / 1e3
        calls[name] = count / n
        overhead += count * w["total"]
    # every wrapped call runs inside a drain but the metrics task's few publishes a second, which stay in the ZMQ
    # row: the rows then add up to the loop's wall time exactly
    timed = sum(v[0] for v in out["timers"].values())
    loop_wall = out["wall_ns"] - out["feeder_ns"]
    outside = loop_wall - timed - out["timers"][DRAIN][1] * w["outside"]
    on_batch = sum(v for k, v in stages.items() if k != DRAIN)
    loop = on_batch + stages[DRAIN] + outside / n / 1e3
    return {"stages": stages, "calls_per_event": calls, "on_batch_us": on_batch, "drain_us": on_batch + stages[DRAIN],
            "outside_us": outside / n / 1e3, "loop_us": loop, "overhead_us": overhead / n / 1e3,
            "events_per_s": n / (loop_wall / 1e9), "events_per_s_all_written": n / (out["written_ns"] / 1e9)}


def _median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r[key])[(len(runs) - 1) // 2]


def run(opts: Options) -> dict[str, Any]:
    trades = opts.events or (3_000 if opts.quick else 150_000)
    base = {**opts.base(), "kind": "stages", "point": "stages"}
    rec = spawn({**base, "step": "record", "trades": trades, "label": "stages record"}, 900, opts)
    try:
        if rec["gaps"] or rec["violations"]:
            raise WorkerError(f"stages: the recording lost or repeated trades (gaps {rec['gaps']}) or broke DLL "
                              f"rules ({rec['violations']})")
        sizes = json.loads(Path(rec["batches_file"]).read_text())
        opts.say(f"stages: recorded {rec['total_trades']:,} trades, {rec['events']:,} events in {len(sizes):,} "
                 f"batches ({rec['events_per_s_all_written']:,.0f} events/s live)")
        runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        for _ in range(opts.repeats()):
            for instrumented in (True, False):  # interleaved, so a noisy neighbour hits both kinds alike
                out = spawn({**base, "step": "measure", "journal": rec["journal"],
                             "batches_file": rec["batches_file"], "instrument": instrumented,
                             "label": f"stages {'instrumented' if instrumented else 'plain'}"}, 900, opts)
                if out["gaps"]:
                    raise WorkerError(f"stages: the continuity check saw lost or repeated trades (gaps {out['gaps']})")
                if out["decisions"] != rec["decisions"]:
                    raise WorkerError(f"stages: {out['decisions']} decisions from the recording, {rec['decisions']} "
                                      "live: the fed input is not what was recorded")
                out.update(corrected(out))
                runs[instrumented].append(out)
                opts.say(f"stages {'instrumented' if instrumented else 'plain'}: {out['events_per_s']:,.0f} "
                         f"events/s, loop {out['loop_us']:.2f} us/event, on_batch {out['on_batch_us']:.2f}")
        spaced = spawn({**base, "step": "spacing", "journal": rec["journal"], "rounds": opts.repeats(),
                        "batches": 100 if opts.quick else 300, "label": "stages spacing"}, 900, opts)
        opts.say("stages spacing: loop thread " + ", ".join(f"{g['loop_us']:.0f}" for g in spaced["gaps"])
                 + " us/event back to back, 1 ms and 10 ms apart")
    finally:
        shutil.rmtree(Path(rec["journal"]).parents[1], ignore_errors=True)
    digests = {r["decision_digest"] for r in runs[True] + runs[False]}
    if len(digests) != 1:
        raise WorkerError("stages: the instrumented and plain runs made different decisions")
    chosen, plain = _median_run(runs[True], "loop_us"), _median_run(runs[False], "loop_us")
    loop = chosen["loop_us"]
    rows = []
    for name, us in chosen["stages"].items():
        if name == DRAIN:
            continue
        rows.append({"stage": name, "calls_per_event": chosen["calls_per_event"][name], "us_per_event": us,
                     "of_on_batch": us / chosen["on_batch_us"], "of_loop": us / loop,
                     "runs_us": [r["stages"][name] for r in runs[True]]})
    # by each stage's median over the runs: the one run shown can catch a stage on a bad moment
    largest = [r["stage"] for r in sorted(rows, key=lambda r: -median(r["runs_us"]))[:3]]
    ordered = sorted(sizes)
    return {
        "trades_recorded": rec["total_trades"], "events": chosen["events"], "repeat": len(runs[True]),
        "live_events_per_s_all_written": rec["events_per_s_all_written"],
        "batches": {"count": len(sizes), "mean": round(sum(sizes) / len(sizes), 1),
                    "median": ordered[(len(ordered) - 1) // 2], "p90": ordered[int(0.9 * (len(ordered) - 1))],
                    "max": ordered[-1]},
        "rows": rows, "largest": largest, "wrapper_ns": chosen["wrapper_ns"],
        "totals": {
            "on_batch_us": chosen["on_batch_us"], "drain_us": chosen["drain_us"],
            "drain_overhead_us": chosen["stages"][DRAIN], "drain_calls_per_event": chosen["calls_per_event"][DRAIN],
            "outside_us": chosen["outside_us"], "loop_us": loop, "wrapper_overhead_us": chosen["overhead_us"],
            "wrapped_calls_per_event": sum(chosen["calls_per_event"].values()),
            "plain_on_batch_us": plain["on_batch_us"], "plain_drain_us": plain["drain_us"],
            "plain_outside_us": plain["outside_us"], "plain_loop_us": plain["loop_us"],
            "runs_on_batch_us": [r["on_batch_us"] for r in runs[True]],
            "runs_drain_us": [r["drain_us"] for r in runs[True]],
            "plain_runs_drain_us": [r["drain_us"] for r in runs[False]]},
        "instrumented": {"events_per_s": chosen["events_per_s"], "runs": [r["events_per_s"] for r in runs[True]],
                         "events_per_s_all_written": chosen["events_per_s_all_written"]},
        "plain": {"events_per_s": plain["events_per_s"], "runs": [r["events_per_s"] for r in runs[False]],
                  "events_per_s_all_written": plain["events_per_s_all_written"]},
        "plain_over_instrumented": (median(r["events_per_s"] for r in runs[False])
                                    / median(r["events_per_s"] for r in runs[True])),
        "decisions": chosen["decisions"], "digests_agree": True, "lanes": chosen["lanes"], "spacing": spaced,
        "zmq": {"sent": chosen["zmq"]["sent"], "dropped": chosen["zmq"]["dropped"],
                "received_by_subscriber": chosen.get("zmq_received_by_subscriber")},
    }
