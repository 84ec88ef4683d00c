"""bench pipeline / replay: the whole app, end to end, measured in child processes.

pipeline: the real App on the native stand-in with every specialist, the coordinator, the paper executor, the
journal, the embedded Valkey and the ZMQ publisher (with a live subscriber in another process), at paced trade
rates and at full speed. Per point: events/s consumed on the loop (trades + book updates), callback -> decision
latency percentiles, CPU of this process in % of one core (DLL thread + loop; the Valkey server and the subscriber
are other processes, reported apart), RSS, and whether the outputs kept up (Valkey backlog, ZMQ drops).

replay: a journal recorded at full speed, replayed as fast as possible through the full hierarchy, with outputs off
(pure computation) and on (ZMQ + Valkey), plus the decision digest of both (they must agree).

Rates are trades/s offered by the simulator across both tickers (bursts off); each trade also moves the book, so
events/s is about 2x trades/s.
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from app.bench.worker import Options, WorkerError
from app.feed.native import ring

PACED_RATES = (200, 1000, 5000, 20000)
# the goals are in events/s (trades + book updates): these points offer the trade rate that gives about that many
# events, from the events per trade the paced points above measured
EVENT_RATES = (200, 5000)


def _overrides(data_dir: str, rate: float | None, max_trades: int, bridge: str = "auto",
               sched_batch: bool = True) -> dict[str, Any]:
    return {
        "run.data_dir": data_dir,
        "run.sched_batch": sched_batch,
        "feed.bridge": bridge,
        "zmq.endpoint": "tcp://127.0.0.1:0",
        "simulator.bursts": False,
        "simulator.pace": True,  # full speed: paced at start, switched to flat out when the window opens
        "simulator.rate": (rate / 2.0) if rate else 1000.0,  # per ticker
        "simulator.max_trades": max_trades,
    }


def subscriber_main(endpoint: str, seconds: float) -> None:
    """A live ZMQ subscriber in its own process: counts messages per topic kind until told to stop (stdin EOF)."""
    import signal

    import zmq

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))  # finish the count and report it
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, 1_000_000)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    received = 0
    deadline = time.monotonic() + seconds
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    print("ready", flush=True)
    while time.monotonic() < deadline and not stop:
        if poller.poll(100):
            while True:
                try:
                    sock.recv_multipart(zmq.NOBLOCK)
                    received += 1
                except zmq.Again:
                    break
    print(json.dumps({"received": received}), flush=True)


def _thread_cpu(proc: Any) -> dict[int, float]:
    """CPU seconds per live thread of `proc`, by native thread id."""
    return {t.id: t.user_time + t.system_time for t in proc.threads()}


def _helper_threads() -> dict[int, str]:
    """Native thread id -> "zmq" (ZeroMQ's I/O threads) or "files" (the loop's executor, where aiofiles writes) for
    this process's helper threads; the threads left are the DLL's own (the stand-in's here). Linux only: elsewhere
    nothing is told apart."""
    out = {t.native_id: "files" for t in threading.enumerate()
           if t.native_id is not None and t.name.startswith(("uvloop_", "asyncio_", "ThreadPoolExecutor"))}
    task_dir = Path(f"/proc/{os.getpid()}/task")
    for task in task_dir.iterdir() if task_dir.is_dir() else ():
        try:
            if (task / "comm").read_text().startswith("ZMQbg"):
                out[int(task.name)] = "zmq"
        except (OSError, ValueError):  # a thread that ended meanwhile
            continue
    return out


async def pipeline_point(rate: float | None, seconds: float, max_trades: int, warmup: float,
                         bridge: str = "auto", sched_batch: bool = True) -> dict[str, Any]:
    import psutil

    from app import config as config_mod
    from app.app import App
    from app.metrics import LatencyHistogram

    data_dir = tempfile.mkdtemp(prefix="hmarl-bench-")
    try:
        cfg = config_mod.load(None, _overrides(data_dir, rate, max_trades, bridge, sched_batch))
        app = App(cfg, fresh=True)
        await app.start()
        pipe = app.pipeline
        assert pipe is not None and app.feed is not None
        endpoint = pipe.publisher.endpoint if pipe.publisher is not None else ""
        sub = subprocess.Popen([sys.executable, "-m", "app.bench.pipeline", "subscriber", endpoint,
                                str(seconds + warmup + 120)], stdout=subprocess.PIPE, text=True)
        assert sub.stdout is not None
        sub.stdout.readline()  # "ready"
        me = psutil.Process()
        counts = pipe.continuity.counts
        if rate is not None:
            await asyncio.sleep(warmup)
        # full speed: measured from the moment the feed is subscribed to the last trade consumed (a drain can take
        # thousands of events at once, so a threshold partway through could be jumped over)
        bridge = app.feed.bridge  # type: ignore[attr-defined]
        pipe.decision_latency = LatencyHistogram()
        bridge.latency = LatencyHistogram()
        control = app.feed.control()  # type: ignore[attr-defined]
        owner = app.feed.session.owner  # type: ignore[attr-defined]
        if rate is None:  # hold the market while the measurement is set up, then flood: the window sees it all
            await owner.call(control.set, "pace", 1e-6)
            await asyncio.sleep(0.2)
        if rate is not None:  # a paced window: the DLL's threads inside our callbacks, with the loop busy
            control.callback_dwell(reset=True)  # (a flood may be over before here: then counted from the start)
        n0, trades0 = sum(counts.values()), counts["trade"]
        # the loop's and the owner thread's own CPU; "other" is the rest of the process (the DLL's threads, ZeroMQ's
        # I/O thread), taken from the total because a thread that ended within the window leaves no record
        tids = {"loop": threading.get_native_id(), "owner": owner._thread.native_id}
        threads0 = _thread_cpu(me)
        cpu0, t0 = me.cpu_times(), time.perf_counter()
        if rate is None:
            await owner.call(control.set, "pace", 0)
        if rate is not None:
            # one sleep: a harness waking the loop 20 times a second would be counted in the loop's CPU
            await asyncio.sleep(max(0.0, t0 + seconds - time.perf_counter()))
        else:
            deadline = t0 + 600
            while counts["trade"] < max_trades and time.perf_counter() < deadline:
                await asyncio.sleep(0.002)
        t1, cpu1 = time.perf_counter(), me.cpu_times()
        # the writer's own high-water mark (since the app started: the warm-up runs at the same rate)
        max_backlog = pipe.writer.stats()["max_backlog"] if pipe.writer is not None else 0
        threads1 = _thread_cpu(me)
        dll_dwell = control.callback_dwell().summary_us()
        n1, trades1 = sum(counts.values()), counts["trade"]
        # sustained means the outputs kept up too: the time until Valkey acknowledged everything enqueued by t1 (a
        # paced flow goes on meanwhile, so the backlog itself need not ever be empty)
        enqueued = pipe.writer.stats()["enqueued_seq"] if pipe.writer is not None else 0
        while pipe.writer is not None and pipe.writer.stats()["acked_seq"] < enqueued and \
                time.perf_counter() < t1 + 120:
            await asyncio.sleep(0.002)
        t_written = time.perf_counter()
        rss = me.memory_info().rss
        wall = t1 - t0
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        split: dict[str, float] | None = None
        if all(tid in threads0 and tid in threads1 for tid in tids.values()):  # ids psutil and threading share
            split = {k: 100.0 * (threads1[tid] - threads0[tid]) / wall for k, tid in tids.items()}
            split["other"] = max(0.0, 100.0 * cpu / wall - split["loop"] - split["owner"])
            helpers = _helper_threads()
            if helpers:  # "other" told apart: ZeroMQ's I/O thread, the file thread, and the DLL's threads left
                for kind in ("zmq", "files"):
                    split[kind] = sum(100.0 * (threads1[t] - threads0.get(t, 0.0)) / wall
                                      for t, k in helpers.items() if k == kind and t in threads1)
                split["dll"] = max(0.0, split["other"] - split["zmq"] - split["files"])
        vk_pid = pipe.server.pid if pipe.server is not None else None
        vk_cpu = psutil.Process(vk_pid).cpu_times() if vk_pid else None
        snapshot = app.snapshot()
        flushed_at = time.perf_counter()
        await app.stop(finalize=True)
        flush_seconds = time.perf_counter() - flushed_at
        sub.terminate()
        sub_out = sub.communicate(timeout=10)[0].strip().splitlines()
        received = json.loads(sub_out[-1])["received"] if sub_out and sub_out[-1].startswith("{") else None
        summary = app.summary()
        return {
            "rate": rate, "bridge": app.feed.session.bridge_path,  # type: ignore[attr-defined]
            "seconds": round(wall, 3), "dll_dwell": dll_dwell,
            "events": n1 - n0, "trades": trades1 - trades0, "total_trades": trades1,
            "events_per_s": (n1 - n0) / wall, "trades_per_s": (trades1 - trades0) / wall,
            "events_per_s_all_written": (n1 - n0) / (t_written - t0),
            "cpu_percent": 100.0 * cpu / wall, "cpu_by_thread": {k: round(v, 2) for k, v in split.items()} if split else None,
            "rss_mb": round(rss / 2**20, 1),
            "callback_to_decision": pipe.decision_latency.summary_us(),
            "callback_to_loop": bridge.latency.summary_us(),
            "decisions": summary.get("decisions"), "gaps": summary.get("gaps"),
            "bridge_max_depth": snapshot["feed"]["bridge"]["max_depth"],
            "valkey_max_backlog": max_backlog,
            "valkey_written": snapshot.get("valkey", {}).get("written"),
            "valkey_server_cpu_s": round(vk_cpu.user + vk_cpu.system, 2) if vk_cpu else None,
            "zmq_sent": snapshot.get("zmq", {}).get("sent"), "zmq_dropped": snapshot.get("zmq", {}).get("dropped"),
            "zmq_received_by_subscriber": received,
            "stop_flush_seconds": round(flush_seconds, 3),
            "violations": summary.get("violations", 0),
            "journal": str(pipe.journal.path) if pipe.journal is not None else None,
        }
    finally:
        if os.environ.get("HMARL_BENCH_KEEP") != "1":
            shutil.rmtree(data_dir, ignore_errors=True)


def replay_point(journal: str, outputs: bool) -> dict[str, Any]:
    args = [sys.executable, "-m", "app", "replay", journal, "--json"] + (["--outputs"] if outputs else [])
    with tempfile.TemporaryDirectory(prefix="hmarl-bench-replay-") as cwd:
        Path(cwd, "config.toml").write_text('[zmq]\nendpoint = "tcp://127.0.0.1:0"\n[run]\ndata_dir = "data"\n')
        proc = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=cwd)
    if proc.returncode != 0:
        raise WorkerError(f"replay exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _spawn(kind: str, params: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    fault = os.environ.get("HMARL_BENCH_FAULT", "")
    env = {**os.environ, "HMARL_BENCH_KEEP": "1" if kind == "record" else os.environ.get("HMARL_BENCH_KEEP", "")}
    proc = subprocess.run([sys.executable, "-m", "app.bench.pipeline", kind, json.dumps(params)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise WorkerError(f"pipeline worker {kind} {params} exited {proc.returncode}: "
                          f"{proc.stderr.strip()[-800:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if fault.startswith("gap") and kind == "point":
        out["gaps"] = (out.get("gaps") or 0) + 1  # the bench's own smoke test: a gap must fail the section
    if out.get("gaps"):
        raise WorkerError(f"pipeline point {params} lost or repeated trades (gaps {out['gaps']})")
    if out.get("violations"):
        raise WorkerError(f"pipeline point {params}: {out['violations']} DLL rule violations")
    return out


def paths() -> list[str]:
    """The callback paths the pipeline runs on: ctypes always, native when the ring was built."""
    return ["ctypes"] + (["native"] if ring.get() is not None else [])


def run(opts: Options) -> dict[str, Any]:
    seconds = opts.seconds or (1.0 if opts.quick else 8.0)
    full_trades = opts.events or (10_000 if opts.quick else 150_000)
    rates = (1000, 5000) if opts.quick else PACED_RATES
    ways = paths()
    points: dict[str, dict[str, Any]] = {path: {} for path in ways}
    keys = [str(r) for r in rates]

    def paced(key: str, rate: float, repeat: int = 1, rank: Callable[[dict[str, Any]], tuple] | None = None) -> None:
        tries: dict[str, list[dict[str, Any]]] = {path: [] for path in ways}
        for _ in range(repeat):
            for path in ways:  # the paths interleaved: a drift of the machine hits both alike
                opts.wait_quiet()
                out = _spawn("point", {"rate": rate, "seconds": seconds, "max_trades": 0, "warmup": 1.0,
                                       "bridge": path, "sched_batch": opts.sched_batch})
                tries[path].append(out)
                lat, dwell = out["callback_to_decision"], out["dll_dwell"]
                opts.say(f"pipeline {path} @ {rate:g} trades/s: {out['events_per_s']:,.0f} events/s, cb->decision "
                         f"p50 {lat['p50_us']} p99 {lat['p99_us']} p999 {lat['p999_us']} us, cpu "
                         f"{out['cpu_percent']:.1f}%, dwell p99 {dwell['p99_us']} max {dwell['max_us']} us")
        for path, outs in tries.items():  # the run with the median of what the goal judges; every run's kept
            chosen = dict(sorted(outs, key=rank)[(len(outs) - 1) // 2]) if rank else outs[0]
            if len(outs) > 1:
                chosen["runs_cpu_percent"] = [round(o["cpu_percent"], 1) for o in outs]
                chosen["runs_callback_to_decision"] = [[o["callback_to_decision"][k] for k in ("p50_us", "p99_us")]
                                                       for o in outs]
            points[path][key] = chosen

    for rate in rates:
        paced(str(rate), rate)
    if not opts.quick:
        done = [o for by_rate in points.values() for o in by_rate.values()]
        per_trade = sum(o["events"] for o in done) / max(1, sum(o["trades"] for o in done))
        # the goals' points: one 8 s window is noisy on a shared box (CPU at ~200 events/s 6.4-7.0 % in two runs of
        # the same tree), so each is run `--repeat` times and the run with the median judged figure is kept
        # (p50 and p99 come from a log-bucket histogram: runs often tie on p50, and then p99 breaks the tie)
        judged = {200: lambda o: (o["cpu_percent"],),
                  5000: lambda o: (o["callback_to_decision"]["p50_us"], o["callback_to_decision"]["p99_us"])}
        for events in EVENT_RATES:
            keys.append(f"{events}ev")
            paced(keys[-1], round(events / per_trade, 1), opts.repeats(), judged.get(events))
    runs: dict[str, list[dict[str, Any]]] = {path: [] for path in ways}
    for _ in range(opts.repeats()):
        for path in ways:
            opts.wait_quiet()
            runs[path].append(_spawn("point", {"rate": None, "seconds": 0, "max_trades": full_trades, "warmup": 0.3,
                                               "bridge": path, "sched_batch": opts.sched_batch}))
    for path in ways:
        runs[path].sort(key=lambda o: o["events_per_s_all_written"])
        full = dict(runs[path][(len(runs[path]) - 1) // 2])
        full["runs_events_per_s"] = [round(r["events_per_s_all_written"]) for r in runs[path]]
        points[path]["full"] = full
        opts.say(f"pipeline {path} full speed: {full['events_per_s_all_written']:,.0f} events/s consumed and written "
                 f"({full['events_per_s']:,.0f} consumed on the loop), runs {full['runs_events_per_s']}")
    section: dict[str, Any] = {"rates": keys + ["full"], "paths": ways, "points": points,
                               "note": "rate = trades/s offered across both tickers (\"200ev\": the trade rate that "
                                       "gives ~200 events/s); events = trades + book updates"}
    section["goals"] = goals(points)
    return section


def goals(points: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Judged on the best path there is (native when built); native against ctypes in the same run."""
    best = points.get("native") or points["ctypes"]
    path = "native" if "native" in points else "ctypes"
    out: dict[str, Any] = {}
    thr = best["full"]["events_per_s_all_written"]
    out["pipeline_throughput"] = {"met": thr >= 50_000, "figure": f"{path}: {thr:,.0f} events/s with everything on "
                                  "(consumed, journaled, published and acknowledged by Valkey)",
                                  "target": ">= 50,000 events/s", "value": thr}
    if "native" in points:
        base = points["ctypes"]["full"]["events_per_s_all_written"]
        ratio = thr / base if base else 0.0
        out["native_over_ctypes"] = {"met": ratio >= 1.5, "figure": f"native {thr:,.0f} / ctypes {base:,.0f} events/s "
                                     f"at full speed = {ratio:.2f}x", "target": ">= 1.5x, same run", "value": ratio}
        dwell = {r: o["dll_dwell"] for r, o in points["native"].items()}
        ok = all(d["p99_us"] <= 2.0 and d["max_us"] <= 50.0 for d in dwell.values())
        text = ", ".join(f"{r}: {d['p99_us']}/{d['max_us']}" for r, d in dwell.items())
        ctypes_text = ", ".join(f"{r}: {o['dll_dwell']['p99_us']}/{o['dll_dwell']['max_us']}"
                                for r, o in points["ctypes"].items())
        out["native_dwell_loop_busy"] = {"met": ok, "figure": f"DLL-side dwell p99/max us with the loop busy, native "
                                         f"{text}; ctypes {ctypes_text}",
                                         "target": "native p99 <= 2 us, max <= 50 us at every rate"}
    # judged at the events/s the goals name; the trade-rate point of the same number is quoted beside it
    key5k = "5000ev" if "5000ev" in best else "5000"
    if key5k in best:
        o = best[key5k]
        lat = o["callback_to_decision"]
        ok = lat["p50_us"] <= 100 and lat["p99_us"] <= 1000 and lat["p999_us"] <= 5000
        also = best.get("5000") if key5k != "5000" else None
        more = f"; at 5,000 trades/s: p50 {also['callback_to_decision']['p50_us']} us, p99 " \
               f"{also['callback_to_decision']['p99_us']} us" if also else ""
        runs = o.get("runs_callback_to_decision")
        if runs:
            more = f" (the median of {len(runs)} runs by p50, then p99; p50/p99 of each: " + \
                ", ".join(f"{a:g}/{b:g}" for a, b in runs) + f" us){more}"
        out["latency_at_5k"] = {"met": ok, "figure": f"{path} at {o['events_per_s']:,.0f} events/s: p50 "
                                f"{lat['p50_us']} us, p99 {lat['p99_us']} us, p999 {lat['p999_us']} us{more}",
                                "target": "p50 <= 100 us, p99 <= 1 ms, p999 <= 5 ms at 5k events/s"}
    key200 = "200ev" if "200ev" in best else "200"
    if key200 in best:
        o = best[key200]
        cpu = o["cpu_percent"]
        more = f"; at 200 trades/s ({best['200']['events_per_s']:,.0f} events/s): {best['200']['cpu_percent']:.1f} %" \
            if key200 != "200" and "200" in best else ""
        by = o.get("cpu_by_thread")  # runs saved before it existed have none
        split = f" (the loop thread {by['loop']:.1f}, the DLL owner thread {by['owner']:.1f}, the rest " \
            f"{by['other']:.1f}" if by else ""
        if by and "dll" in by:
            split += f": ZeroMQ's I/O thread {by['zmq']:.1f}, the file thread {by['files']:.1f}, the DLL's own " \
                     f"threads {by['dll']:.1f}"
        split += ")" if by else ""
        if o.get("runs_cpu_percent"):
            split += f" (the median of {len(o['runs_cpu_percent'])} runs: " + \
                " / ".join(f"{c:.1f}" for c in o["runs_cpu_percent"]) + " %)"
        out["cpu_at_200"] = {"met": cpu <= 5.0, "figure": f"{path}: {cpu:.1f} % of one core at "
                             f"{o['events_per_s']:,.0f} events/s{split}{more}",
                             "target": "<= 5 % of one core at 200 events/s", "value": cpu}
    return out


def run_replay(opts: Options) -> dict[str, Any]:
    trades = opts.events or (10_000 if opts.quick else 150_000)
    rec = _spawn("record", {"rate": None, "seconds": 0, "max_trades": trades, "warmup": 0.3})
    journal = rec["journal"]
    try:
        out: dict[str, Any] = {"trades_recorded": rec["total_trades"], "live_decisions": rec["decisions"]}
        for label, outputs in (("compute_only", False), ("with_outputs", True)):
            runs = []
            for _ in range(opts.repeats()):
                opts.wait_quiet()
                runs.append(replay_point(journal, outputs))
            runs.sort(key=lambda r: r["events_per_s"])
            mid = runs[(len(runs) - 1) // 2]
            out[label] = {"events_per_s": mid["events_per_s"], "runs": [r["events_per_s"] for r in runs],
                          "decisions": mid["decisions"], "digest": mid["decision_digest"]}
            opts.say(f"replay {label}: {mid['events_per_s']:,.0f} events/s, runs {out[label]['runs']}")
        out["digests_agree"] = out["compute_only"]["digest"] == out["with_outputs"]["digest"]
        if not out["digests_agree"]:
            raise WorkerError("replay with and without outputs made different decisions")
        return out
    finally:
        shutil.rmtree(Path(journal).parents[1], ignore_errors=True)


def main(argv: list[str]) -> int:
    kind = argv[0]
    if kind == "subscriber":
        subscriber_main(argv[1], float(argv[2]))
        return 0
    params = json.loads(argv[1])
    if os.environ.get("HMARL_BENCH_FAULT", "").startswith("crash"):
        os.abort()
    from app.loops import run as run_loop

    sched_batch = params.get("sched_batch", True)
    out = run_loop(lambda: pipeline_point(params["rate"], params["seconds"], params["max_trades"],
                                          params["warmup"], params.get("bridge", "auto"), sched_batch),
                   sched_batch=sched_batch)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
