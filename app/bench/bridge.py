"""`bench bridge`: the DLL-thread -> consumer hand-off, six designs side by side on the same source.

Source (identical for every design): the stand-in's connector thread calls the V1 trade callback. For n it is the
native ring's C callback (bridge_native.py: records, drained by the DLL owner thread into the same Bridge). For the
others it is a ctypes callback (worker.py), which stamps `received_ns`, pins the thread state, copies every field
into a `Tick` and calls `put(tick)`; only `put` and the consumer differ:
- a  ours on the ctypes path: `app.feed.bridge.Bridge` on a uvloop loop: deque append + one
     `call_soon_threadsafe(drain)` per batch; the sink counts (the Bridge itself records callback -> drain latency);
- a0 the same with the ctypes default thread state (a new Python thread state per callback): the binding's
     `feed.keep_thread_state = false`;
- b  one `loop.call_soon_threadsafe(consume, tick)` per event on the same kind of loop;
- c  `queue.Queue.put(tick)`, drained by a consumer thread (the original's "thread-safe buffer");
- d  the DLL runs in a separate process whose callback sends each tick with `multiprocessing.connection`
     (pickled) over localhost TCP to the measuring process, which receives in a blocking loop (the original's
     isolated-process fix). TCP_NODELAY is set on both ends (config `nodelay`, default true): with Nagle's
     algorithm left on, d's p50 at 20k/s was ~15 ms instead of ~30 us, and the comparison should be with the best
     version of the rival. CLOCK_MONOTONIC is system-wide, so latencies compare across the two processes.
Every consumer counts, checks trade numbers are consecutive, and records latency = now - received_ns in an
app.metrics.LatencyHistogram, leaving the first events out (warm-up: 0.5 s of a paced point, 5 % of a flood).
Paced points run warm-up + `seconds` at `rate` with `pace` = 1 and `bursts` = 0 and then finalize the DLL (which
joins its thread); full-speed points flood `events` trades. Throughput = (consumed - 1) / (last - first) at the
consumer; each full-speed point runs `repeat` times (fresh processes) and the median run is kept. Any event
produced (the stand-in's `trades_delivered`) and not consumed is an error, never a number; so is a gap in the trade
numbers (counted per event for b, c, d and per batch for a) or a rule break the stand-in counted.
The switch-interval study runs designs a and c at 5k/s under each `sys.setswitchinterval` value, `repeat` rounds
interleaved, and keeps the median of each latency figure.
"""
from __future__ import annotations

import asyncio
import functools
import json
import operator
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Client, Listener
from typing import Any, Callable

from app.feed.clock import now_ns
from app.bench import floor
from app.bench.worker import (
    CpuWindow,
    Options,
    Source,
    WorkerError,
    full_speed,
    spawn,
    spawn_median,
    trade_callback,
    warmup_events,
    window_seconds,
    with_fault,
)
from app.feed.bridge import Bridge
from app.feed.native import ring
from app.metrics import LatencyHistogram

DESIGNS = ("n", "a", "a0", "b", "c", "d")
DESCRIPTIONS = {
    "n": "native ring: C callbacks fill a ring, the DLL owner thread drains batches into the Bridge (feed.bridge = "
         "native)",
    "a": "ours: copy + deque + one call_soon_threadsafe per batch (app.feed.bridge.Bridge), kept thread state",
    "a0": "ours with the ctypes default thread state (one new Python thread state per callback)",
    "b": "one call_soon_threadsafe per event",
    "c": "queue.Queue drained by a consumer thread",
    "d": "separate process: pickled events through multiprocessing.connection on localhost (TCP_NODELAY)",
}
# not a design (nothing is handed off): the stand-in timing a C callback that does nothing, the floor under n's dwell
FLOOR_DESCRIPTION = "z: an empty C callback, timed by the stand-in as every design's: the floor under n's dwell"
RATES = (1000, 5000, 20000)
SWITCH_RATE = 5000
SWITCH_DESIGNS = ("a", "c")
SWITCH_INTERVALS = (0.005, 0.001, 0.0002)
SWITCH_SECONDS = 2.0  # per run; each interval runs `repeat` times, interleaved


# ------------------------------------------------------------------------------------------------ consumers
class Tally:
    """What a consumer saw: counts, gaps in the trade numbers, first/last consume time, latency."""

    def __init__(self) -> None:
        self.count = 0
        self.gaps = 0
        self.first_ns = 0
        self.last_ns = 0
        self.hist = LatencyHistogram()

    def summary(self) -> dict[str, Any]:
        span = (self.last_ns - self.first_ns) / 1e9
        return {"consumed": self.count, "gaps": self.gaps, "seconds": round(span, 4),
                "throughput": (self.count - 1) / span if span > 0 and self.count > 1 else 0.0,
                "latency": self.hist.summary_us()}


def per_event_consumer(warmup: int, target: int, on_target: Callable[[], Any]) -> tuple[Callable[[Any], None],
                                                                                         Tally]:
    """The consumer of designs b, c and d: one call per event."""
    tally = Tally()
    now = now_ns
    hist = tally.hist
    record = hist.record
    count = gaps = first = last = 0
    expect = -1

    def consume(ev: Any) -> None:
        nonlocal count, gaps, expect, first, last, hist, record
        t = now()
        record(t - ev.received_ns)
        number = ev.number
        if number != expect and expect >= 0:
            gaps += 1
        expect = number + 1
        count += 1
        last = t
        if count == 1:
            first = t
        if count == warmup:
            hist = LatencyHistogram()
            record = hist.record
        if count == target:
            on_target()

    def sync() -> None:  # copy the closure's counters into the tally (after the run)
        tally.count, tally.gaps, tally.first_ns, tally.last_ns, tally.hist = count, gaps, first, last, hist

    def live() -> int:  # events consumed so far
        return count

    consume.sync = sync  # type: ignore[attr-defined]
    consume.live = live  # type: ignore[attr-defined]
    return consume, tally


def batch_consumer(bridge_ref: list[Bridge], warmup: int, target: int, on_target: Callable[[], Any],
                   number: str = "number") -> tuple[Callable[[list[Any]], None], Tally]:
    """The sink of designs a and n: counts per batch and checks the batch's numbers (attribute `number`) are
    consecutive."""
    tally = Tally()
    now = now_ns
    expect = -1
    warmed = warmup <= 0
    num = operator.attrgetter(number)

    def sink(batch: list[Any]) -> None:
        nonlocal expect, warmed
        n = len(batch)
        t = now()
        first_no = num(batch[0])
        if (first_no != expect and expect >= 0) or num(batch[-1]) - first_no != n - 1:
            tally.gaps += 1
        expect = num(batch[-1]) + 1
        if not tally.count:
            tally.first_ns = t
        tally.count += n
        tally.last_ns = t
        if not warmed and tally.count >= warmup:
            warmed = True
            bridge_ref[0].latency = LatencyHistogram()  # the Bridge records latency before calling the sink
        if tally.count >= target > 0:
            on_target()

    return sink, tally


# ------------------------------------------------------------------------------------------------ designs a, a0, b
async def _on_loop(cfg: dict[str, Any], design: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    source = Source(cfg)
    flood = full_speed(cfg)
    target = int(cfg["events"]) if flood else 0
    done = asyncio.Event()
    extra: dict[str, Any] = {}
    bridge_ref: list[Bridge] = []
    if design in ("a", "a0"):
        sink, tally = batch_consumer(bridge_ref, warmup_events(cfg), target, done.set)
        bridge = Bridge(loop, sink, warn_depth=1 << 40)
        bridge_ref.append(bridge)
        put: Callable[[Any], Any] = bridge.put
        consumed: Callable[[], int] = lambda: tally.count  # noqa: E731
    else:
        consume, tally = per_event_consumer(warmup_events(cfg), target, done.set)
        put = functools.partial(loop.call_soon_threadsafe, consume)
        consumed = consume.live  # type: ignore[attr-defined]
    errors: list[str] = []
    cb = trade_callback(source.api, source.lib, with_fault(put, source.fault), source.pinner.pin_current, errors)
    source.initialize(cb)
    deadline = time.monotonic() + 15
    while not source.connected():
        if time.monotonic() > deadline:
            raise WorkerError(f"no market connection within 15s (states {source.states})")
        await asyncio.sleep(0.002)
    window = CpuWindow()
    source.subscribe()
    if flood:  # until the consumer has them all, or the stand-in has made them all (then drain below)
        deadline = time.monotonic() + float(cfg.get("timeout", 120))
        while not done.is_set() and source.delivered() < target and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(done.wait(), 0.01)
            except asyncio.TimeoutError:
                pass
    else:
        await asyncio.sleep(window_seconds(cfg))
    produced = source.finalize()  # joins the connector thread: nothing is produced after this
    # every hand-off happened before DLLFinalize returned: wait for the loop to run them, and stop waiting once
    # nothing has arrived for 0.2 s (events that were lost never will)
    deadline, seen, quiet_since = time.monotonic() + 120, -1, time.monotonic()
    while consumed() < produced and time.monotonic() < deadline:
        if consumed() != seen:
            seen, quiet_since = consumed(), time.monotonic()
        elif time.monotonic() - quiet_since > 0.2:
            break
        await asyncio.sleep(0.001)
    if bridge_ref:
        bridge_ref[0].close()
        stats = bridge_ref[0].stats()
        tally.hist = bridge_ref[0].latency
        extra["bridge"] = {k: stats[k] for k in ("wakeups", "mean_batch", "max_batch", "max_depth", "batch_sizes",
                                                 "lost_wakeups")}
    else:
        consume.sync()  # type: ignore[attr-defined]
    return _result(cfg, design, source, produced, tally, errors, window.close(), extra)


# ------------------------------------------------------------------------------------------------ design c
def _queue_thread(cfg: dict[str, Any]) -> dict[str, Any]:
    source = Source(cfg)
    flood = full_speed(cfg)
    target = int(cfg["events"]) if flood else 0
    done = threading.Event()
    consume, tally = per_event_consumer(warmup_events(cfg), target, done.set)
    q: queue.Queue[Any] = queue.Queue()

    def consumer() -> None:
        get = q.get
        while True:
            ev = get()
            if ev is None:
                break
            consume(ev)

    thread = threading.Thread(target=consumer, name="bench-consumer", daemon=True)
    thread.start()
    errors: list[str] = []
    cb = trade_callback(source.api, source.lib, with_fault(q.put, source.fault), source.pinner.pin_current, errors)
    source.start(cb)
    window = CpuWindow()
    source.subscribe()
    if flood:  # until the consumer has them all, or the stand-in has made them all (the sentinel drains the rest)
        deadline = time.monotonic() + float(cfg.get("timeout", 120))
        while not done.wait(0.01) and source.delivered() < target and time.monotonic() < deadline:
            pass
    else:
        time.sleep(window_seconds(cfg))
    produced = source.finalize()
    q.put(None)
    thread.join(120)
    if thread.is_alive():
        raise WorkerError("the queue consumer thread did not finish within 120 s after the DLL stopped")
    consume.sync()  # type: ignore[attr-defined]
    return _result(cfg, "c", source, produced, tally, errors, window.close(), {})


# ------------------------------------------------------------------------------------------------ design d
def _separate_process(cfg: dict[str, Any]) -> dict[str, Any]:
    key = os.urandom(16)
    listener = Listener(("127.0.0.1", 0), authkey=key)
    child_cfg = {**cfg, "kind": "producer", "address": list(listener.address), "authkey": key.hex()}
    errfile = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([sys.executable, "-m", "app.bench.worker", json.dumps(child_cfg)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errfile)

    def child_said() -> str:
        errfile.seek(0)
        lines = errfile.read().strip().splitlines()
        return (": " + " | ".join(lines[-5:])) if lines else ""

    accepted: dict[str, Any] = {}

    def accept() -> None:
        try:
            accepted["conn"] = listener.accept()
        except Exception as exc:  # noqa: BLE001 - reported below
            accepted["error"] = exc

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    deadline = time.monotonic() + 30
    while acceptor.is_alive():
        acceptor.join(0.05)
        if acceptor.is_alive() and (proc.poll() is not None or time.monotonic() > deadline):
            proc.kill()
            raise WorkerError(f"the producer process never connected (exit {proc.poll()}){child_said()}")
    if "conn" not in accepted:
        proc.kill()
        raise WorkerError(f"accepting the producer failed: {accepted.get('error')}")
    conn = accepted["conn"]
    if cfg.get("nodelay", True):
        _nodelay(conn)
    flood = full_speed(cfg)
    target = int(cfg["events"]) if flood else 0
    consume, tally = per_event_consumer(warmup_events(cfg), target, lambda: None)
    recv = conn.recv
    window = CpuWindow()
    try:
        while True:
            ev = recv()
            if ev is None:
                break
            consume(ev)
        produced_stats = recv()
    except (EOFError, OSError) as exc:
        proc.wait(10)
        consume.sync()  # type: ignore[attr-defined]
        raise WorkerError(f"the producer process went away after {tally.count} events "
                          f"({type(exc).__name__}, exit {proc.returncode}){child_said()}") from None
    cpu = window.close(extra_own=float(produced_stats["cpu_seconds"]))
    consume.sync()  # type: ignore[attr-defined]
    try:
        rc = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise WorkerError("the producer process did not exit") from None
    if rc != 0:
        raise WorkerError(f"the producer process failed (exit {rc}){child_said()}")
    conn.close()
    listener.close()
    errors = list(produced_stats.get("errors", []))
    result = _result(cfg, "d", None, int(produced_stats["produced"]), tally, errors, cpu,
                     {"producer_cpu_seconds": produced_stats["cpu_seconds"],
                      "dll_dwell": produced_stats.get("dll_dwell", {})})
    result["sim"] = produced_stats.get("sim", {})
    if produced_stats.get("rule_breaks"):
        result["error"] = f"design d: the stand-in counted {produced_stats['rule_breaks']}"
    return result


def _nodelay(conn: Any) -> None:
    """TCP_NODELAY on a multiprocessing.connection socket: without it Nagle's algorithm holds small sends back
    until the previous segment is acknowledged (delayed ACK: up to 40 ms), which cripples design d at 20k/s; the
    comparison is with the best version of the rival design."""
    s = socket.fromfd(conn.fileno(), socket.AF_INET, socket.SOCK_STREAM)  # a dup of the same socket
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    finally:
        s.close()


def produce(cfg: dict[str, Any]) -> dict[str, Any]:
    """Design d's child: the DLL and its callbacks; every tick is pickled and sent to the measuring process."""
    conn = Client(tuple(cfg["address"]), authkey=bytes.fromhex(cfg["authkey"]))
    if cfg.get("nodelay", True):
        _nodelay(conn)
    source = Source(cfg)
    errors: list[str] = []
    cb = trade_callback(source.api, source.lib, with_fault(conn.send, source.fault), source.pinner.pin_current,
                        errors)
    source.start(cb)
    cpu0 = time.process_time()  # the measuring process adds this to its own
    source.subscribe()
    if full_speed(cfg):
        target, deadline = int(cfg["events"]), time.monotonic() + float(cfg.get("timeout", 120))
        while source.delivered() < target and time.monotonic() < deadline:
            time.sleep(0.005)
    else:
        time.sleep(window_seconds(cfg))
    produced = source.finalize()
    cpu = time.process_time() - cpu0
    conn.send(None)
    conn.send({"produced": produced, "errors": errors + source.errors, "cpu_seconds": cpu,
               "dll_dwell": source.dll_dwell,
               "sim": source.sim_stats(), "rule_breaks": source.rule_breaks()})
    conn.close()
    return {"produced": produced}


# ------------------------------------------------------------------------------------------ the dwell floor
def _empty_callback(cfg: dict[str, Any]) -> dict[str, Any]:
    """The stand-in calls the ring library's empty C callback: the dwell it times is the floor of this machine (the
    call, the stand-in's clock, the scheduler, the hypervisor) that no callback body can go under."""
    native = ring.get()
    if native is None:
        raise WorkerError("the native ring is not built (no C compiler at install time)")
    source = Source(cfg)
    source.start(native.null_trade_v1 if source.api == "v1" else native.null_trade_v2)
    source.subscribe()
    if full_speed(cfg):
        target, deadline = int(cfg["events"]), time.monotonic() + float(cfg.get("timeout", 120))
        while source.delivered() < target and time.monotonic() < deadline:
            time.sleep(0.005)
    else:
        time.sleep(window_seconds(cfg))
    produced = source.finalize()
    out = {"design": "z", "rate": cfg.get("rate") or "full", "produced": produced, "dll_dwell": source.dll_dwell}
    if source.rule_breaks():
        out["error"] = f"empty callback at {out['rate']}: the stand-in counted {source.rule_breaks()}"
    elif source.dll_dwell.get("count", 0) < 2:
        out["error"] = f"empty callback at {out['rate']}: only {source.dll_dwell.get('count', 0)} callbacks timed"
    return out


# ------------------------------------------------------------------------------------------------ results
def _result(cfg: dict[str, Any], design: str, source: Source | None, produced: int, tally: Tally, errors: list[str],
            cpu: dict[str, float], extra: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"design": design, "rate": cfg.get("rate") or "full", "api": cfg.get("api", "v1"),
                           "keep_thread_state": bool(cfg.get("keep_thread_state", True)), "produced": produced,
                           **tally.summary(), **extra, **cpu}
    out["lost"] = produced - tally.count
    out["cpu_us_per_event"] = round(cpu["cpu_seconds"] * 1e6 / produced, 2) if produced else 0.0
    problems = []
    if source is not None:
        errors = errors + source.errors
        out["sim"] = source.sim_stats()
        out.setdefault("dll_dwell", source.dll_dwell)
        if source.rule_breaks():
            problems.append(f"the stand-in counted {source.rule_breaks()}")
    if errors:
        problems.append(f"callback raised {errors[0]}")
    if out["lost"]:
        problems.append(f"{out['lost']} of {produced} events lost (consumed {tally.count})")
    if tally.gaps:
        problems.append(f"{tally.gaps} gaps in the trade numbers")
    if produced < 2:
        problems.append(f"only {produced} events produced")
    if problems:
        out["error"] = f"design {design} at {out['rate']}: " + "; ".join(problems)
    return out


def measure(cfg: dict[str, Any]) -> dict[str, Any]:
    design = cfg["design"]
    if design in ("a", "a0", "b"):
        from app.loops import loop_factory

        _, factory = loop_factory(cfg.get("loop", "uvloop"))
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(_on_loop(cfg, design))
    if design == "n":
        from app.bench import bridge_native
        from app.loops import loop_factory

        _, factory = loop_factory(cfg.get("loop", "uvloop"))
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(bridge_native.measure(cfg))
    if design == "z":
        return _empty_callback(cfg)
    if design == "c":
        return _queue_thread(cfg)
    if design == "d":
        return _separate_process(cfg)
    raise WorkerError(f"unknown design {design!r}")


# ------------------------------------------------------------------------------------------------ parent side
def sizes(opts: Options) -> tuple[float, int, float]:
    """(seconds per paced point, events per full-speed point, warm-up seconds)."""
    if opts.quick:
        return opts.seconds or 0.3, opts.events or 20_000, 0.1
    return opts.seconds or 3.0, opts.events or 500_000, 0.5


def median_point(outs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one paced configuration -> one point: every latency figure is the median over the runs
    (taken figure by figure), each run's p99 is kept in `runs_p99_us`; counts add up."""
    if len(outs) == 1:
        return outs[0]
    mid = (len(outs) - 1) // 2

    def med(values: list[float]) -> float:
        return sorted(values)[mid]

    out = dict(outs[0])
    out["latency"] = {k: med([o["latency"][k] for o in outs]) for k in outs[0]["latency"]}
    out["latency"]["count"] = sum(o["latency"]["count"] for o in outs)
    for k in ("throughput", "cpu_us_per_event", "others_cores"):
        if all(k in o for o in outs):
            out[k] = med([o[k] for o in outs])
    for k in ("produced", "consumed", "lost", "gaps"):
        out[k] = sum(o[k] for o in outs)
    out["runs_p99_us"] = [o["latency"]["p99_us"] for o in outs]
    out["runs_others_cores"] = [o.get("others_cores") for o in outs]
    return out


def point(opts: Options, design: str, rate: int | None, switchinterval: float | None = None,
          seconds: float | None = None) -> dict[str, Any]:
    default_seconds, events, warmup = sizes(opts)
    seconds = opts.seconds or seconds or default_seconds
    if design == "a0" and not opts.events:
        events //= 5  # a new thread state per callback: ~10x slower, fewer events for the same time
    cfg = {**opts.base(), "kind": "bridge", "design": design, "rate": rate, "seconds": seconds, "events": events,
           "warmup": warmup, "keep_thread_state": design != "a0"}
    where = f"{rate}/s" if rate else "full speed"
    cfg["label"] = f"bridge {design} @ {where}"
    if switchinterval is not None:
        cfg["switchinterval"] = switchinterval
        cfg["label"] += f" switchinterval {switchinterval * 1e3:g} ms"
    return cfg


def _timeout(cfg: dict[str, Any]) -> float:
    return 60 + (window_seconds(cfg) if cfg.get("rate") else 240)


def _say(opts: Options, cfg: dict[str, Any], out: dict[str, Any]) -> None:
    lat = out["latency"]
    runs = f", runs {out['runs']}" if "runs" in out else ""
    opts.say(f"{cfg['label']}: {out['throughput']:,.0f}/s p50 {lat['p50_us']} p99 {lat['p99_us']} "
             f"p999 {lat['p999_us']} max {lat['max_us']} us, lost {out['lost']}, others' load "
             f"{out.get('others_cores', '?')} cores{runs}")


def run(opts: Options) -> dict[str, Any]:
    ceiling = floor.measure_ceiling(opts)
    rates: list[int | None] = [*RATES, None]
    designs = [d for d in DESIGNS if d != "n" or ring.get() is not None]  # n needs the ring built at install
    points: dict[str, dict[str, Any]] = {d: {} for d in designs}
    floor_dwell: dict[str, Any] = {}
    for rate in rates:  # designs interleaved per rate: drift of the machine hits all of them alike
        for design in designs:
            cfg = point(opts, design, rate)
            out = spawn_median(cfg, _timeout(cfg), opts.repeats(), "throughput", opts) if rate is None else \
                spawn(cfg, _timeout(cfg), opts)
            points[design][_key(rate)] = out
            _say(opts, cfg, out)
        if ring.get() is not None:  # the floor under design n's dwell, at the same rate
            cfg = point(opts, "z", rate)
            floor_dwell[_key(rate)] = dwell = spawn(cfg, _timeout(cfg), opts)["dll_dwell"]
            opts.say(f"{cfg['label']} (an empty C callback): dwell p50 {dwell['p50_us']} p99 {dwell['p99_us']} max "
                     f"{dwell['max_us']} us")
    intervals = opts.switch_intervals if opts.switch_intervals is not None else (
        () if opts.quick else SWITCH_INTERVALS)
    switch: dict[str, dict[str, Any]] = {d: {} for d in SWITCH_DESIGNS} if intervals else {}
    runs: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for _ in range(opts.repeats()):  # round robin: a neighbour's burst of load spreads over every interval
        for si in intervals:
            for design in SWITCH_DESIGNS:
                cfg = point(opts, design, SWITCH_RATE, si, seconds=SWITCH_SECONDS if not opts.quick else None)
                out = spawn(cfg, _timeout(cfg), opts)
                runs.setdefault((design, si), []).append(out)
                _say(opts, cfg, out)
    for (design, si), outs in runs.items():
        switch[design][f"{si:g}"] = median_point(outs)
    return {"api": opts.api, "loop": opts.loop, "repeat": opts.repeats(), "designs": DESCRIPTIONS,
            "rates": [_key(r) for r in rates],
            "ceiling": {"point": floor.CEILING, "rate": ceiling["rate"], "ns_per_event": ceiling["ns_per_event"]},
            "points": points, "dwell_floor": floor_dwell, "floor_description": FLOOR_DESCRIPTION,
            "switch_interval": {"rate": SWITCH_RATE, "points": switch} if switch else {},
            "sizes": dict(zip(("seconds", "events", "warmup"), sizes(opts)))}


def _key(rate: int | None) -> str:
    return str(rate) if rate else "full"
