"""`soak --market-day`: a full B3 session's worth of trades through the real binding, bridge, pipeline and outputs.

Why paced at a high rate and not `simulator.pace = false`: a flood has no back-pressure anywhere. In thread mode the
stand-in's callback thread outruns the loop ~10x and the bridge's deque grows by millions of events (GBs of RSS,
which would make the RSS slope meaningless); in process mode the child's sender parks then drops batches past
`protocol.OVERFLOW_EVENTS`, which the soak would rightly count as lost trades. So the stand-in paces the market at
`rate` trades/s per ticker (bursts at 3x the rate on top, as around B3 news), chosen at what this box sustains; the
soak stops as soon as `trades` trades reached the app, closes the session (every ticker unsubscribed) and waits
for the outputs to catch up (bounded) before it stops the app and compares.

The comparison at the end streams the journal (a market day is ~4-5 million frames: the list-based
app.io.valkey_compare.missing_frames would hold them all in memory) with the same rule: each frame must be in
Valkey with the same bytes, under its stream or the run's late stream.
"""
from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any

import redis.asyncio as redis

from app.io.valkey_keys import entries_from_journal

TRADES = 2_000_000  # a busy WDO + WIN day on B3 (the two together trade ~1-2.5 million times a session)
# trades/s per ticker offered outside bursts, per isolation mode: what the 2-core reference box sustains with room
# for the chaos (a Valkey restart is followed by a catch-up from the journal while the market goes on). Measured
# 2026-11-28: saturated, thread mode delivered ~9.3k trades/s in all, process mode ~4.6k (the child's encode and
# the parent's decode share the two cores with the pipeline and valkey-server); at 3,500/ticker in thread mode
# (7.3k trades/s, the loop at 89 % of a core, another job on the second core) the live stream kept up but the
# catch-up after each Valkey restart never did (2.4M frames pending at the close).
RATE = {"thread": 2500.0, "process": 1500.0}
BURST_FACTOR = 3.0  # bursts at this multiple of the rate
CHUNK = 2000
# the streams are capped (valkey.maxlen: 1M entries, book 300k) as retention; a market day overflows the caps by
# design (1.2M book updates per ticker), and trimmed frames would read as lost in the comparison, so the soak lifts
# them above the day's size (the first market-day run, capped, "missed" 1.75M trimmed frames with every one acked)
DAY_MAXLEN = 50_000_000


def overrides(rate: float, data_dir: str) -> dict[str, Any]:
    """Config overrides for the soaked app: the stand-in paced at `rate` per ticker with bursts, on a scratch
    data directory (journal and Valkey of a market day are GBs; they must not land in the user's data)."""
    # stop_timeout: the soak judges whether everything reached Valkey in the end, so the stop may wait for the
    # catch-up after the last Valkey restart instead of giving up after the default 15 s
    return {"simulator.pace": True, "simulator.rate": rate, "simulator.bursts": True,
            "simulator.burst_rate": rate * BURST_FACTOR, "simulator.max_trades": 0, "run.data_dir": data_dir,
            "run.stop_timeout": 600.0, "valkey.maxlen": DAY_MAXLEN, "valkey.maxlen_by_kind": {"book": DAY_MAXLEN}}


async def missing_frames_streamed(url: str, run_dir: Path, prefix: str = "hmarl",
                                  plant_loss: bool = False) -> tuple[int, int, list[str]]:
    """(frames compared, frames missing or different, up to 5 examples). With `plant_loss` the first frame is
    deleted from Valkey before the comparison (the soak's own test proves the check fails on a loss)."""
    client = redis.from_url(url)
    compared, missing, examples = 0, 0, []
    entries = entries_from_journal(run_dir, prefix)
    try:
        while chunk := list(islice(entries, CHUNK)):
            if plant_loss and compared == 0:
                await client.xdel(chunk[0][0], chunk[0][1])
            stored = await _stored(client, chunk)
            rows = [stored.get((key, entry_id)) for key, entry_id, _ in chunk]
            late = [k for k, row in enumerate(rows) if row is None]
            if late:  # rare (frames that came after their stream moved on): looked up in the late stream
                pipe = client.pipeline(transaction=False)
                for k in late:
                    key, entry_id, _ = chunk[k]
                    pipe.xrange(f"{prefix}:late:{run_dir.name}:{key[len(prefix) + 1:]}", entry_id, entry_id)
                for k, found in zip(late, await pipe.execute()):
                    rows[k] = found[0][1].get(b"d") if found else None
            for (key, entry_id, payload), row in zip(chunk, rows):
                if row != payload:
                    missing += 1
                    if len(examples) < 5:
                        examples.append(f"{key} {entry_id}")
            compared += len(chunk)
    finally:
        await client.aclose()
    return compared, missing, examples


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


async def _stored(client: Any, chunk: list[tuple[str, str, bytes]]) -> dict[tuple[str, str], bytes | None]:
    """The payloads Valkey holds for a chunk's ids: one XRANGE per stream over the chunk's id span (a few streams
    per chunk instead of one command per frame: ~10x faster on millions of frames)."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for key, entry_id, _ in chunk:
        i = _id(entry_id)
        span = spans.get(key)
        if span is None:
            spans[key] = [i, i]
        else:
            span[0], span[1] = min(span[0], i), max(span[1], i)
    pipe = client.pipeline(transaction=False)
    for key, (lo, hi) in spans.items():
        pipe.xrange(key, f"{lo[0]}-{lo[1]}", f"{hi[0]}-{hi[1]}")
    out: dict[tuple[str, str], bytes | None] = {}
    for key, rows in zip(spans, await pipe.execute()):
        for raw_id, fields in rows:
            out[(key, raw_id.decode())] = fields.get(b"d")
    return out
