"""bench valkey / zmq: the outputs alone, fed with a journal recorded from the simulator at full speed.

valkey: a fresh embedded server; (1) steady write rate — the live writer fed in batches on the loop as fast as it
acknowledges, (2) catch-up rate — a writer pointed at the finished journal, as after an outage.
zmq: the publisher sending every recorded event with a live subscriber in another process: messages/s published,
received, dropped.
Each runs in a child process of its own.
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
from typing import Any

from app.bench.pipeline import _spawn
from app.bench.worker import Options, WorkerError


async def valkey_rates(journal: str) -> dict[str, Any]:
    from app import config as config_mod
    from app.io.journal import read_journal
    from app.io.valkey_server import ValkeyServer
    from app.io.valkey_writer import ValkeyWriter

    events = list(read_journal(journal))
    data_dir = tempfile.mkdtemp(prefix="hmarl-bench-vk-")
    cfg = config_mod.load(None, {"run.data_dir": data_dir})
    server = ValkeyServer(cfg.valkey, data_dir)
    url = await server.start()
    try:
        # steady: the live path (enqueue from the loop, batches every ~50 ms), no journal behind it
        vk = config_mod.with_overrides(cfg, {"valkey.prefix": "steady"}).valkey
        writer = ValkeyWriter(url, vk, None, run_id="bench-steady")
        await writer.start()
        t0 = time.perf_counter()
        step = 1000
        for i in range(0, len(events), step):
            while writer.stats()["backlog"] > vk.backlog // 2:
                await asyncio.sleep(0.005)
            writer.enqueue(events[i:i + step])
            await asyncio.sleep(0)
        while writer.stats()["written"] < len(events):
            await asyncio.sleep(0.005)
        steady = time.perf_counter() - t0
        await writer.close()
        # catch-up: everything from the journal, as after an outage
        vk = config_mod.with_overrides(cfg, {"valkey.prefix": "catchup"}).valkey
        writer = ValkeyWriter(url, vk, journal, run_id="bench-catchup")
        await writer.start()
        t0 = time.perf_counter()
        last = await writer.catch_up_journal(timeout=600)
        catchup = time.perf_counter() - t0
        stats = writer.stats()
        await writer.close()
    finally:
        await server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return {"events": len(events), "steady_events_per_s": len(events) / steady, "steady_seconds": round(steady, 3),
            "catchup_events": last, "catchup_events_per_s": last / catchup, "catchup_seconds": round(catchup, 3),
            "catchup_duty": vk.catchup_duty if hasattr(vk, "catchup_duty") else None,
            "errors": stats.get("errors", 0)}


async def zmq_rates(journal: str) -> dict[str, Any]:
    from app import config as config_mod
    from app.io.journal import read_journal
    from app.io.zmq_publisher import Publisher

    events = list(read_journal(journal))
    cfg = config_mod.load(None, {"zmq.endpoint": "tcp://127.0.0.1:0"})
    pub = Publisher(cfg.zmq)
    await pub.start()
    sub = subprocess.Popen([sys.executable, "-m", "app.bench.pipeline", "subscriber", pub.endpoint, "600"],
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None
    sub.stdout.readline()
    await asyncio.sleep(0.5)  # the subscription reaches the publisher
    t0 = time.perf_counter()
    step = 256
    for i in range(0, len(events), step):
        pub.publish(events[i:i + step])
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - t0
    stats = pub.stats()
    await asyncio.sleep(1.0)  # let the subscriber drain its queue
    sub.terminate()
    out = sub.communicate(timeout=10)[0].strip().splitlines()
    received = json.loads(out[-1])["received"] if out and out[-1].startswith("{") else None
    await pub.close()
    return {"events": len(events), "published_per_s": len(events) / elapsed, "sent": stats["sent"],
            "dropped": stats["dropped"], "received_by_subscriber": received}


def _child(kind: str, journal: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "app.bench.outputs", kind, journal], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        raise WorkerError(f"bench {kind} exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _with_journal(opts: Options, kind: str) -> dict[str, Any]:
    trades = opts.events or (10_000 if opts.quick else 150_000)
    rec = _spawn("record", {"rate": None, "seconds": 0, "max_trades": trades, "warmup": 0.3})
    journal = rec["journal"]
    try:
        runs = []
        for _ in range(opts.repeats()):
            opts.wait_quiet()
            runs.append(_child(kind, journal))
        return {"runs": runs, "median": _median(runs)}
    finally:
        shutil.rmtree(Path(journal).parents[1], ignore_errors=True)


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    mid = (len(runs) - 1) // 2
    return {k: sorted(r[k] for r in runs)[mid] if isinstance(runs[0][k], (int, float)) else runs[0][k]
            for k in runs[0] if runs[0][k] is not None}


def run_valkey(opts: Options) -> dict[str, Any]:
    out = _with_journal(opts, "valkey")
    m = out["median"]
    opts.say(f"valkey: steady {m['steady_events_per_s']:,.0f} events/s, catch-up {m['catchup_events_per_s']:,.0f}"
             " events/s")
    return out


def run_zmq(opts: Options) -> dict[str, Any]:
    out = _with_journal(opts, "zmq")
    m = out["median"]
    if m.get("received_by_subscriber") is not None and m["received_by_subscriber"] + m["dropped"] < m["sent"]:
        raise WorkerError(f"zmq: the subscriber got {m['received_by_subscriber']} of {m['sent']} sent with only "
                          f"{m['dropped']} counted as dropped")
    opts.say(f"zmq: {m['published_per_s']:,.0f} msgs/s published, {m['received_by_subscriber']} received, "
             f"{m['dropped']} dropped")
    return out


def main(argv: list[str]) -> int:
    from app.loops import run as run_loop

    kind, journal = argv[0], argv[1]
    if os.environ.get("HMARL_BENCH_FAULT", "").startswith("crash"):
        os.abort()
    fn = valkey_rates if kind == "valkey" else zmq_rates
    print(json.dumps(run_loop(lambda: fn(journal))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
