"""Batched Valkey writes that never slow the loop and, with a journal, never lose an input event.

Keys (all under `valkey.prefix`, default "hmarl"; docs/OUTPUTS.md):
    <prefix>:<kind>:<TICKER>   stream per ticker and kind (trade, book, signal, decision, order, fill, position,
                                reward, risk); <prefix>:state and <prefix>:metric have no ticker
                                entry fields: d = the codec payload (msgpack, same bytes as the journal frame)
    <prefix>:learned:<name>     hash: learned state (one field per top-level key, msgpack values)
    <prefix>:run:<run_id>       hash: the run summary; <prefix>:runs is a sorted set of run ids by end time
    <prefix>:progress:<run_id>  hash: how far this run's journal is in Valkey (seq, and the last id per stream)

Stream ids are explicit and deterministic: "<ms>-<n>". For input events (trade, book, state) n is the journal
sequence number and ms the event's exchange time in ms, never below the previous entry of the same stream in this
run (IdClock says what events without a time get). Writing the journal again therefore produces the very
same ids, and re-adding an entry is refused by Valkey as "equal or smaller" - which is how catch-up stays
idempotent. Each batch is one server-side script call (atomic) that also records the progress hash, so after
any crash the server itself says where to resume.

Flow: enqueue() (sync, on the loop) computes ids and appends to a bounded in-memory backlog. A background task
writes up to `max_batch` entries per call every `batch_interval`. When Valkey is unreachable it backs off
(up to `backoff_max`); the backlog keeps the newest input events and lets older ones fall back to the journal.
On reconnect it reads the progress hash and replays from the journal whatever is missing, throttled to
`catchup_duty` of the loop, before writing live entries again. Derived events (signals, decisions, fills...) are
best effort: beyond the backlog bound they are dropped and counted.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterator

import msgspec
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import ValkeyConfig
from app.events import (SCHEMA_VERSION, Book, Decision, Event, Fill, InvalidTicker, Metric, Order, Position, Reward,
                        RiskBreach, Signal, State, Trade)
from app.io import codec
from app.io.journal import JournalError, JournalReader, JournalTail, journal_files, read_header
from app.io.valkey_server import mask_url, normalize_url

log = logging.getLogger("app.io.valkey")

# event type -> stream kind; input kinds come from the journal, the rest are derived on the loop
KIND_OF: dict[type, str] = {Trade: "trade", Book: "book", State: "state", InvalidTicker: "state", Signal: "signal",
                            Decision: "decision", Order: "order", Fill: "fill", Position: "position",
                            Reward: "reward", RiskBreach: "risk", Metric: "metric"}
INPUT_KINDS = ("trade", "book", "state")
KINDS = ("trade", "book", "state", "signal", "decision", "order", "fill", "position", "reward", "risk", "metric")
NO_TICKER_KINDS = ("state", "metric")
_INPUT_TYPES = frozenset((Trade, Book, State, InvalidTicker))
_CONN_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError, asyncio.TimeoutError)
_STATE_META = ("_v", "_saved_ns")

# One call per batch: XADD every entry (an id that is not above the stream's last one means "already there": count
# it and go on), then record the progress. Entries travel as a few msgpack arrays and one string of payloads, so the
# client packs ten arguments per batch, not three per entry (redis-py packs each argument in Python), and the loop
# never touches an entry one by one to send it.
#   KEYS[1] = progress hash, KEYS[2..] = every stream this writer has used (stream i is KEYS[i + 1])
#   ARGV[1] = seq of the last input entry ("" = no input entries: no progress), ARGV[2] = the run's latest exchange
#   time in ms at that entry, ARGV[3] = msgpack array of MAXLEN per stream (strings)
#   ARGV[4..6] = input entries: msgpack array [stream i, ms, n] per entry (id "ms-n"), msgpack array of payload
#   lengths, the payloads one after the other; ARGV[7..9] = derived entries, the same way
# Returns {added, duplicates, then (stream i, ms of its last input entry) per stream with input entries}.
_WRITE_LUA = """
local maxlen = cmsgpack.unpack(ARGV[3])
local fmt, find, sub, pcall = string.format, string.find, string.sub, redis.pcall
local added, dups = 0, 0
local last = {}
for b = 4, 7, 3 do
  local meta, lens, data = cmsgpack.unpack(ARGV[b]), cmsgpack.unpack(ARGV[b + 1]), ARGV[b + 2]
  local inputs = b == 4
  local pos = 1
  for i = 1, #lens do
    local k, ms, n = meta[3 * i - 2], meta[3 * i - 1], meta[3 * i]
    local stop = pos + lens[i]
    local r = pcall('XADD', KEYS[k + 1], 'MAXLEN', '~', maxlen[k], fmt('%d-%d', ms, n), 'd', sub(data, pos, stop - 1))
    pos = stop
    if type(r) == 'table' and r.err then
      if find(r.err, 'equal or smaller', 1, true) then dups = dups + 1 else return redis.error_reply(r.err) end
    else
      added = added + 1
    end
    if inputs then last[k] = ms end
  end
end
local out = {added, dups}
if ARGV[1] ~= '' then
  local fields = {'seq', ARGV[1], 'now', ARGV[2]}
  for k, ms in pairs(last) do
    fields[#fields + 1] = 'ms:' .. KEYS[k + 1]
    fields[#fields + 1] = fmt('%d', ms)
    out[#out + 1] = k
    out[#out + 1] = ms
  end
  redis.call('HSET', KEYS[1], unpack(fields))
end
return out
"""
_encode = msgspec.msgpack.Encoder().encode
_NONE = (_encode([]), _encode([]), b"")  # no entries of a kind: empty meta, lengths, payloads


class _Head(msgspec.Struct):
    """What catch-up needs of a journal payload (msgspec skips the other fields without building them)."""

    type: str
    v: int = 0
    ticker: str | None = None
    ts: int = 0


_head_decoder = msgspec.msgpack.Decoder(_Head)
_INPUT_KIND = {cls.__name__: KIND_OF[cls] for cls in _INPUT_TYPES}


class _Chunk:
    """Backlog entries of one enqueue() call (at most `max_batch`), as the script takes them: `meta` is
    [stream i, ms, n] per entry (n = journal seq for inputs, the derived counter otherwise), `lens` the payload
    lengths, `data` the payloads back to back; `now` is the run's latest exchange time (ms) after the last entry."""

    __slots__ = ("data", "lens", "meta", "now")

    def __init__(self, meta: list[int], lens: list[int], data: bytes, now: int) -> None:
        self.meta, self.lens, self.data, self.now = meta, lens, data, now

    @property
    def first(self) -> int:
        return self.meta[2]

    @property
    def last(self) -> int:
        return self.meta[-1]

    def drop_front(self, k: int) -> None:
        self.data = self.data[sum(self.lens[:k]):]
        del self.meta[:3 * k], self.lens[:k]

    def keep_front(self, k: int) -> None:
        self.data = self.data[:sum(self.lens[:k])]
        del self.meta[3 * k:], self.lens[k:]


def _pack(chunks: list[_Chunk]) -> tuple[bytes, bytes, bytes]:
    """The script's three arguments for these chunks' entries."""
    if not chunks:
        return _NONE
    if len(chunks) == 1:
        c = chunks[0]
        return _encode(c.meta), _encode(c.lens), c.data
    meta: list[int] = []
    lens: list[int] = []
    for c in chunks:
        meta += c.meta
        lens += c.lens
    return _encode(meta), _encode(lens), b"".join([c.data for c in chunks])


class ValkeyUnavailable(Exception):
    """Valkey could not be reached in time for a call that needs an answer (load_state)."""


def stream_key(prefix: str, kind: str, ticker: str | None = None) -> str:
    if kind in NO_TICKER_KINDS or not ticker:
        return f"{prefix}:{kind}"
    return f"{prefix}:{kind}:{ticker}"


def key_of(prefix: str, event: Event) -> str:
    return stream_key(prefix, KIND_OF.get(type(event), type(event).__name__.lower()),
                      getattr(event, "ticker", None))


class IdClock:
    """Deterministic stream ids: ms is the event's exchange time in ms, never below the stream's previous entry.

    An event without a time (ts 0: connection states, some book snapshots) takes its stream's previous time, or
    else the latest exchange time of the run so far, or else (state and metric streams only) the run's start.
    A ticker stream never gets the wall-clock start as a fallback: when exchange time is not wall time (replays,
    the simulator) that one entry would drag every later id of the stream up to it."""

    __slots__ = ("last", "floor_ms", "now")

    def __init__(self, floor_ms: int, last: dict[str, int] | None = None, now: int = 0) -> None:
        self.floor_ms = floor_ms
        self.last: dict[str, int] = dict(last or {})
        self.now = now  # the latest exchange time seen, ms

    def ms(self, key: str, ts: int, timeless_floor: bool) -> int:
        prev = self.last.get(key, 0)
        if ts > 0:
            ms = ts // 1_000_000
            if ms > self.now:
                self.now = ms
        else:
            ms = prev or self.now or (self.floor_ms if timeless_floor else 0)
        if ms < prev:
            ms = prev
        self.last[key] = ms
        return ms

    def copy(self) -> "IdClock":
        return IdClock(self.floor_ms, self.last, self.now)


def _timeless_floor(event: Event) -> bool:
    return KIND_OF.get(type(event)) in NO_TICKER_KINDS


def run_start_ms(journal_dir: str | Path) -> tuple[str, int]:
    """(run id, start time in ms) from the first part's header: the floor of ids for events without a time."""
    first = journal_files(journal_dir)[0]
    header = read_header(first)
    return str(header.get("run_id", Path(journal_dir).name)), int(header.get("created_ns", 0)) // 1_000_000


def entries_from_journal(journal_dir: str | Path, prefix: str = "hmarl") -> Iterator[tuple[str, str, bytes]]:
    """(stream key, id, payload) exactly as the writer stores the journal's events: the reference a test or an
    auditor compares Valkey against."""
    from app.io.journal import iter_frames

    _run, floor = run_start_ms(journal_dir)
    clock = IdClock(floor)
    decode = codec.decode_input
    for seq, payload in iter_frames(journal_dir):
        event = decode(payload)
        key = key_of(prefix, event)
        yield key, f"{clock.ms(key, event.ts, _timeless_floor(event))}-{seq}", payload


class ValkeyWriter:
    """See the module docstring. `journal` is the run's Journal (preferred) or its directory, or None."""

    def __init__(self, url: str, cfg: ValkeyConfig, journal: Any = None, *, run_id: str | None = None) -> None:
        self.url = normalize_url(url)
        self.cfg = cfg
        self.prefix = cfg.prefix
        self._journal_obj = journal if hasattr(journal, "flushed_seq") else None
        self._journal_dir: Path | None = (Path(journal.path) if self._journal_obj is not None
                                          else Path(journal) if journal else None)
        self.run_id = run_id or getattr(journal, "run_id", None) or (self._journal_dir.name if self._journal_dir
                                                                      else f"run-{time.time_ns()}")
        self._client: redis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._connected = False
        self._clock_ack = IdClock(0)  # the ids of what Valkey has acknowledged (catch-up continues from it)
        self._seq = 0  # input events enqueued so far = journal seq of the last one
        self._derived_n = 0
        # every stream this writer has used, numbered from 1 (the script's KEYS[i + 1]); per stream its MAXLEN and
        # whether events without a time may take the run's start; enqueue() finds a stream by type, then ticker
        self._streams: list[str] = []
        self._stream_ix: dict[str, int] = {}
        self._ix_cache: dict[type, dict[Any, int]] = {}
        self._catchup_streams: dict[tuple[str, str | None], tuple[str, int, bool]] = {}
        self._maxlens: list[str] = []
        self._timeless: list[bool] = [False]
        self._keys_arg: list[str] | None = None  # [progress hash, *streams], rebuilt when a stream is added
        self._maxlen_arg = b""
        # the id clocks of enqueue() (IdClock's rules, inlined): last ms per stream index, latest exchange time
        self._floor_ms = 0
        self._live_ms: list[int] = [0]
        self._live_now = 0
        self._derived_ms: list[int] = [0]
        self._derived_now = 0
        # the backlogs: chunks of consecutive entries (inputs: consecutive journal seqs), and how many entries
        self._inputs: deque[_Chunk] = deque()
        self._derived: deque[_Chunk] = deque()
        self._n_inputs = 0
        self._n_derived = 0
        self._acked = 0  # inputs known to be in Valkey: everything with seq <= _acked
        self._tail: JournalTail | None = None
        self._script: Any = None
        self._pending_state: dict[str, dict[str, Any]] = {}
        self._pending_summary: dict[str, dict[str, Any]] = {}
        self._maxlen = {k: cfg.maxlen_by_kind.get(k, cfg.maxlen) for k in KINDS}
        self._progress_key = f"{self.prefix}:progress:{self.run_id}"
        self._down_since: float | None = None
        self._catchup_logged = False
        self._wiring_warned = False
        self._partial = False  # the last live batch was not full
        self._next_lost_log = 0.0
        self._st = {"written": 0, "inputs_written": 0, "caught_up": 0, "dropped": 0, "spilled": 0, "lost": 0,
                    "duplicates": 0, "reconnects": 0, "batches": 0, "last_batch_ms": 0.0, "max_batch_ms": 0.0,
                    "errors": 0}

    # -- lifecycle -----------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect (once; if Valkey is not there yet the background task keeps trying) and start writing."""
        if self._task is not None:
            return
        floor = time.time_ns() // 1_000_000
        if self._journal_dir is not None:
            try:
                _run, floor = run_start_ms(self._journal_dir)
                self._tail = JournalTail(self._journal_dir)
            except (JournalError, OSError) as err:
                log.warning("valkey: journal %s unusable for catch-up (%s); events beyond the backlog will be lost",
                            self._journal_dir, err)
                self._journal_dir = None
        self._floor_ms = floor
        self._clock_ack = IdClock(floor)
        self._live_ms = [0] * len(self._live_ms)
        self._derived_ms = [0] * len(self._derived_ms)
        self._live_now = self._derived_now = 0
        self._closing = False
        self._client = redis.from_url(self.url, socket_timeout=self.cfg.timeout,
                                      socket_connect_timeout=self.cfg.timeout, retry=Retry(NoBackoff(), 0),
                                      health_check_interval=0)
        await self._connect()
        if not self._connected:
            log.warning("valkey: %s not reachable at start; running without it and retrying in the background",
                        mask_url(self.url))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="valkey-writer")

    async def close(self) -> None:
        """Write what is pending (at most `close_timeout` seconds), then disconnect."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=self.cfg.close_timeout)
        except asyncio.TimeoutError:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            pending = self._seq - self._acked
            log.warning("valkey: closed with %d input events not yet in Valkey (they are in the journal %s), "
                        "%d derived events, %d learned states and %d run summaries unwritten", pending,
                        self._journal_dir, self._n_derived, len(self._pending_state), len(self._pending_summary))
        finally:
            self._task = None
            if self._client is not None:
                try:
                    await self._client.aclose()
                except Exception:  # noqa: BLE001
                    pass
                self._client = None
            if self._tail is not None:
                await self._tail.close()

    # -- hot path ------------------------------------------------------------------------------------------------
    def enqueue(self, events: list[Event], payloads: list[bytes] | None = None) -> None:
        """Queue events for the next batch (`payloads`: their `codec.encode` bytes when the caller already has them).
        Never awaits; O(batch)."""
        if not events:
            return
        if payloads is None:
            payloads = codec.encode_batch(events)
        step = self.cfg.max_batch
        if len(events) <= step:
            self._enqueue(events, payloads)
        else:  # chunks of at most max_batch, so one script call never takes more
            for i in range(0, len(events), step):
                self._enqueue(events[i:i + step], payloads[i:i + step])
        if self._n_inputs + self._n_derived >= step:
            self._wake.set()

    def _enqueue(self, events: list[Event], payloads: list[bytes]) -> None:
        cache = self._ix_cache
        input_types = _INPUT_TYPES
        live, dlast, timeless = self._live_ms, self._derived_ms, self._timeless
        now, dnow, floor = self._live_now, self._derived_now, self._floor_ms
        seq, dn = self._seq, self._derived_n
        meta: list[int] = []  # inputs: stream, ms, seq per entry
        add = meta.append
        dmeta: list[int] = []
        dpos: list[int] = []  # where the derived events are in `events`
        for event in events:
            t = type(event)
            ticker = getattr(event, "ticker", None)
            by_ticker = cache.get(t)
            ix = by_ticker.get(ticker) if by_ticker is not None else None
            if ix is None:
                ix = self._register(event, ticker)  # grows live, dlast, timeless in place
            # the stream's id clock (IdClock.ms, inlined)
            if t in input_types:
                ts = event.ts  # type: ignore[attr-defined]
                prev = live[ix]
                if ts > 0:
                    ms = ts // 1_000_000
                    if ms > now:
                        now = ms
                    if ms < prev:
                        ms = prev
                else:
                    ms = prev or now or (floor if timeless[ix] else 0)
                live[ix] = ms
                seq += 1
                add(ix)
                add(ms)
                add(seq)
            else:
                ts = getattr(event, "ts", 0)
                prev = dlast[ix]
                if ts > 0:
                    ms = ts // 1_000_000
                    if ms > dnow:
                        dnow = ms
                    if ms < prev:
                        ms = prev
                else:
                    ms = prev or dnow or (floor if timeless[ix] else 0)
                dlast[ix] = ms
                dn += 1
                dpos.append(len(meta) // 3 + len(dpos))
                dmeta += (ix, ms, dn)
        self._seq, self._derived_n = seq, dn
        self._live_now, self._derived_now = now, dnow
        if not dpos:
            self._add_inputs(meta, payloads, now)
        elif len(dpos) == len(events):
            self._add_derived(dmeta, payloads)
        else:
            derived = set(dpos)
            self._add_inputs(meta, [p for i, p in enumerate(payloads) if i not in derived], now)
            self._add_derived(dmeta, [payloads[i] for i in dpos])

    def _add_inputs(self, meta: list[int], payloads: list[bytes], now: int) -> None:
        """Append a chunk of inputs; beyond the backlog bound the oldest entries fall back to the journal (they are
        counted once read from there)."""
        n = len(payloads)
        if not n:
            return
        chunk = _Chunk(meta, list(map(len, payloads)), b"".join(payloads), now)
        inputs = self._inputs
        over = self._n_inputs + n - self.cfg.backlog
        if over > 0:
            self._st["spilled"] += over
            while over > 0 and inputs:
                first = inputs[0]
                k = len(first.lens)
                if k <= over:
                    inputs.popleft()
                    self._n_inputs -= k
                    over -= k
                else:
                    first.drop_front(over)
                    self._n_inputs -= over
                    over = 0
            if over >= n:
                return
            if over:
                chunk.drop_front(over)
                n -= over
        inputs.append(chunk)
        self._n_inputs += n

    def _add_derived(self, meta: list[int], payloads: list[bytes]) -> None:
        """Append a chunk of derived entries; beyond the backlog bound new ones are dropped and counted."""
        n = len(payloads)
        room = self.cfg.backlog - self._n_derived
        if n > room:
            self._st["dropped"] += n - max(room, 0)
            if room <= 0:
                return
            del meta[3 * room:]
            payloads = payloads[:room]
            n = room
        self._derived.append(_Chunk(meta, list(map(len, payloads)), b"".join(payloads), 0))
        self._n_derived += n

    def _catchup_stream(self, head: _Head, payload: bytes) -> tuple[str, int, bool]:
        """(stream key, index, timeless) of a journal frame, checked as an input event of a known schema version."""
        if not 1 <= head.v <= SCHEMA_VERSION or head.type not in _INPUT_KIND:
            codec.decode_input(payload)  # raises the CodecError that says what is wrong
            raise codec.CodecError(f"not an input event: {head.type!r} (schema v{head.v})")
        kind = _INPUT_KIND[head.type]
        key = stream_key(self.prefix, kind, head.ticker)
        stream = self._catchup_streams[(head.type, head.ticker)] = (key, self._ix(key), kind in NO_TICKER_KINDS)
        return stream

    def _register(self, event: Event, ticker: Any) -> int:
        """The stream index of `event`, remembered for its type and ticker."""
        ix = self._ix(key_of(self.prefix, event))
        self._ix_cache.setdefault(type(event), {})[ticker] = ix
        return ix

    def _ix(self, key: str) -> int:
        """The index of stream `key` (1, 2, ...), numbering it on first use."""
        ix = self._stream_ix.get(key)
        if ix is None:
            self._streams.append(key)
            ix = self._stream_ix[key] = len(self._streams)
            kind = key[len(self.prefix) + 1:].split(":", 1)[0]
            self._maxlens.append(str(self._maxlen.get(kind, self.cfg.maxlen)))
            self._timeless.append(kind in NO_TICKER_KINDS)
            self._live_ms.append(0)
            self._derived_ms.append(0)
            self._keys_arg = None
        return ix

    async def catch_up_journal(self, timeout: float | None = None) -> int:
        """Write a finished journal (one not being appended to by this writer) into Valkey, resuming from the
        server's progress hash; returns once all of it is acknowledged (or raises TimeoutError). For runs that
        ended with Valkey down: start a writer on that run's journal directory and call this."""
        if self._journal_dir is None:
            raise ValueError("catch_up_journal needs the writer to be given a journal")
        last = await asyncio.get_running_loop().run_in_executor(None, _last_seq, self._journal_dir)
        self._seq = max(self._seq, last)
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._acked < last:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"valkey: caught up to {self._acked} of {last} in {timeout} s")
            await asyncio.sleep(0.02)
        return last

    # -- state, summaries, reads ---------------------------------------------------------------------------------
    async def save_state(self, name: str, state: dict[str, Any]) -> None:
        """Replace the learned-state hash `name`. If Valkey is down it is kept and written on reconnect/close."""
        fields = _state_fields(state)
        if not self._connected and self._task is not None:
            self._pending_state[name] = fields  # known outage: do not make the caller wait for a timeout
            return
        try:
            await asyncio.wait_for(self._write_state(name, fields), timeout=self.cfg.timeout)
        except (*_CONN_ERRORS, RedisError) as err:
            self._pending_state[name] = fields
            log.warning("valkey: could not save state %r now (%s); will retry in the background", name, err)

    async def load_state(self, name: str) -> dict[str, Any] | None:
        """The learned state saved under `name`, or None if there is none. Raises ValkeyUnavailable when Valkey
        does not answer (so the caller does not mistake an outage for a fresh start)."""
        if name in self._pending_state:
            return _state_from_fields(self._pending_state[name])
        client = self._client or self._new_client()
        try:
            raw = await asyncio.wait_for(client.hgetall(f"{self.prefix}:learned:{name}"), timeout=self.cfg.timeout)
        except (*_CONN_ERRORS, RedisError) as err:
            raise ValkeyUnavailable(f"valkey {mask_url(self.url)}: cannot load state {name!r} ({err})") from None
        finally:
            if client is not self._client:
                await client.aclose()
        return _state_from_fields(raw) if raw else None

    async def clear_state(self, name: str) -> None:
        assert self._client is not None
        self._pending_state.pop(name, None)
        await self._client.delete(f"{self.prefix}:learned:{name}")

    async def write_summary(self, run_id: str, summary: dict[str, Any]) -> None:
        """One hash per run (values JSON), indexed by end time in <prefix>:runs."""
        fields = {k: msgspec.json.encode(v) for k, v in summary.items()}
        if not self._connected and self._task is not None:
            self._pending_summary[run_id] = fields
            return
        try:
            await asyncio.wait_for(self._write_summary(run_id, fields), timeout=self.cfg.timeout)
        except (*_CONN_ERRORS, RedisError) as err:
            self._pending_summary[run_id] = fields
            log.warning("valkey: could not write the run summary now (%s); will retry until close", err)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self._st)
        gap = self._gap_end() - self._acked if self._journal_dir is not None else 0
        out.update(connected=self._connected, backlog=self._n_inputs + self._n_derived,
                   catchup_pending=max(gap, 0), acked_seq=self._acked, enqueued_seq=self._seq,
                   url=mask_url(self.url))
        return out

    # -- background task -----------------------------------------------------------------------------------------
    def _new_client(self) -> redis.Redis:
        return redis.from_url(self.url, socket_timeout=self.cfg.timeout, socket_connect_timeout=self.cfg.timeout,
                              retry=Retry(NoBackoff(), 0), health_check_interval=0)

    async def _connect(self) -> None:
        """PING, then ask the server how far this run got (the progress hash) and resume from there."""
        assert self._client is not None
        try:
            await self._client.ping()
            progress = await self._client.hgetall(self._progress_key)
        except (*_CONN_ERRORS, RedisError) as err:
            if self._connected or self._down_since is None:
                log.warning("valkey: %s unreachable (%s); backing off, the journal keeps everything",
                            mask_url(self.url), err)
                self._down_since = time.monotonic()
            self._connected = False
            return
        remote = int(progress.get(b"seq", 0))
        last = {k[3:].decode(): int(v) for k, v in progress.items() if k.startswith(b"ms:")}
        now = int(progress.get(b"now", 0))
        if remote < self._acked:
            log.warning("valkey: server has this run only up to event %d of %d acknowledged (restarted without "
                        "persistence?); catching up from the journal", remote, self._acked)
        self._acked = remote
        self._clock_ack = IdClock(self._floor_ms, last, now)
        self._forget_inputs(remote)
        if self._down_since is not None:
            log.info("valkey: reconnected to %s after %.1f s", mask_url(self.url), time.monotonic() - self._down_since)
            self._st["reconnects"] += 1
            self._down_since = None
        self._connected = True
        self._catchup_logged = False

    async def _run(self) -> None:
        backoff = 0.1
        interval = self.cfg.batch_interval
        while True:
            if not self._connected:
                if self._closing and not self._has_work():
                    return
                await self._connect()
                if not self._connected:
                    await self._nap(backoff, wakeable=False)
                    backoff = min(backoff * 2, self.cfg.backoff_max)
                    continue
                backoff = 0.1
            self._check_wiring()
            try:
                await self._flush_pending_extras()
                wrote = await self._step()
            except _CONN_ERRORS as err:
                self._connected = False
                self._down_since = time.monotonic()
                log.warning("valkey: connection lost (%s); backing off, catching up from the journal later", err)
                continue
            except RedisError as err:
                self._st["errors"] += 1
                self._connected = False
                self._down_since = time.monotonic()
                log.error("valkey: write refused (%s); retrying", err)
                await self._nap(backoff, wakeable=False)
                backoff = min(backoff * 2, self.cfg.backoff_max)
                continue
            if not wrote:
                if self._closing and not self._has_work():
                    return
                await self._nap(interval)
            elif self._partial and not self._closing:
                # less than a full batch was waiting: let the next one fill for up to an interval (enqueue wakes us
                # as soon as `max_batch` entries wait) rather than paying a call per handful of entries
                await self._nap(interval)

    def _check_wiring(self) -> None:
        """Between batches both sides have seen the same input events; if not, ids will not match the journal."""
        j = self._journal_obj
        if j is not None and j.seq != self._seq and not self._wiring_warned:
            self._wiring_warned = True
            log.error("valkey: the writer has seen %d input events and the journal %d; give both every input event "
                      "in the same order (journal.append(batch); writer.enqueue(batch)) or catch-up ids will differ",
                      self._seq, j.seq)

    async def _nap(self, seconds: float, wakeable: bool = True) -> None:
        if not wakeable:  # back-off: enqueue() keeps setting _wake while the backlog is full
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    def _gap_end(self) -> int:
        """Inputs up to this seq are not in the backlog: they must come from the journal."""
        return self._inputs[0].first - 1 if self._inputs else self._seq

    def _forget_inputs(self, seq: int) -> None:
        """Drop the backlog's inputs up to `seq` (they are in Valkey)."""
        inputs = self._inputs
        while inputs and inputs[0].first <= seq:
            first = inputs[0]
            if first.last <= seq:
                inputs.popleft()
                self._n_inputs -= len(first.lens)
            else:
                k = seq - first.first + 1
                first.drop_front(k)
                self._n_inputs -= k

    def _has_work(self) -> bool:
        return bool(self._inputs or self._derived or self._pending_state or self._pending_summary
                    or (self._journal_dir is not None and self._acked < self._gap_end()))

    async def _step(self) -> bool:
        """One transaction: journal catch-up if there is a gap before the backlog, else live entries."""
        self._partial = False
        gap_end = self._gap_end()
        if self._acked < gap_end:
            if self._journal_dir is None or self._tail is None:
                self._st["lost"] += gap_end - self._acked
                now = time.monotonic()
                if now >= self._next_lost_log:  # once every few seconds, not once per batch (replay floods)
                    self._next_lost_log = now + 5.0
                    log.error("valkey: %d input events could not be written and there is no journal to recover them "
                              "(%d so far)", gap_end - self._acked, self._st["lost"])
                self._acked = gap_end
                return True
            return await self._catch_up_step(gap_end)
        return await self._live_step()

    async def _live_step(self) -> bool:
        inputs, derived = self._inputs, self._derived
        if not inputs and not derived:
            return False
        max_batch = self.cfg.max_batch
        t0 = time.perf_counter()
        # less than a full batch waiting: after this one, let the next fill for a while (see _run)
        self._partial = self._n_inputs + self._n_derived < max_batch
        ins = _take(inputs, max_batch)
        n_in = sum(len(c.lens) for c in ins)
        des = _take(derived, max(max_batch - n_in, max_batch // 4))
        n_de = sum(len(c.lens) for c in des)
        last_seq, now = (ins[-1].last, ins[-1].now) if ins else (None, 0)
        last_ms = await self._write(_pack(ins), _pack(des), last_seq, now)
        # what was written leaves the backlogs (by seq: enqueue may have spilled some of it meanwhile)
        if des:
            last_n = des[-1].last
            while derived and derived[0].last <= last_n:
                self._n_derived -= len(derived.popleft().lens)
        if last_seq is not None:
            self._forget_inputs(last_seq)
            self._acked = last_seq
            ack = self._clock_ack
            ack.now = now
            streams = self._streams
            for i in range(0, len(last_ms), 2):
                ack.last[streams[int(last_ms[i]) - 1]] = int(last_ms[i + 1])
        self._account(n_in + n_de, n_in, t0)
        return True

    async def _catch_up_step(self, gap_end: int) -> bool:
        assert self._tail is not None
        want = self._acked + 1
        t0 = time.perf_counter()
        frames = await self._tail.read(want, min(self.cfg.max_batch, gap_end - self._acked))
        frames = [f for f in frames if f[0] <= gap_end]
        if not self._catchup_logged:
            self._catchup_logged = True
            log.info("valkey: catching up %d input events from the journal", gap_end - self._acked)
        if not frames:
            j = self._journal_obj
            if j is not None and self._tail.exhausted and j.settled_seq >= want:
                # the journal is past `want` yet holds no such frame: it refused them (disk trouble)
                skip_to = min(gap_end, j.settled_seq)
                self._st["lost"] += skip_to - self._acked
                log.error("valkey: the journal has no events %d..%d (refused by a stuck disk); they are lost",
                          want, skip_to)
                self._acked = skip_to
                return True
            if j is not None and j.is_open and j.flushed_seq < want:
                await j.flush()  # have the journal write what we need now rather than in 50 ms
                return True
            return False  # not on disk yet: try again next interval
        if frames[0][0] > want:
            self._st["lost"] += frames[0][0] - want
        # only the type, ticker and time of each frame matter here: a light decode, the stream by (type, ticker)
        # from a cache, the ack clock's rules (IdClock.ms) inlined
        head = _head_decoder.decode
        streams = self._catchup_streams
        clock = self._clock_ack.copy()
        last, now, floor = clock.last, clock.now, clock.floor_ms
        schema = SCHEMA_VERSION
        meta: list[int] = []
        for seq, payload in frames:
            try:
                h = head(payload)
            except msgspec.DecodeError:
                codec.decode_input(payload)  # raises the CodecError that says what is wrong
                raise
            stream = streams.get((h.type, h.ticker))
            if stream is None or h.v != schema:
                stream = self._catchup_stream(h, payload)
            key, ix, timeless = stream
            ts = h.ts
            prev = last.get(key, 0)
            if ts > 0:
                ms = ts // 1_000_000
                if ms > now:
                    now = ms
                if ms < prev:
                    ms = prev
            else:
                ms = prev or now or (floor if timeless else 0)
            last[key] = ms
            meta += (ix, ms, seq)
        clock.now = now
        last_seq = frames[-1][0]
        derived = self._derived
        des = _take(derived, self.cfg.max_batch // 4)
        n_de = sum(len(c.lens) for c in des)
        payloads = [p for _seq, p in frames]
        await self._write((_encode(meta), _encode(list(map(len, payloads))), b"".join(payloads)), _pack(des),
                          last_seq, clock.now)
        if des:
            last_n = des[-1].last
            while derived and derived[0].last <= last_n:
                self._n_derived -= len(derived.popleft().lens)
        self._acked = last_seq
        self._clock_ack = clock
        self._st["caught_up"] += len(frames)
        self._account(len(frames) + n_de, len(frames), t0)
        if self._acked >= self._gap_end():
            log.info("valkey: caught up with the journal (event %d); writing live again", self._acked)
        # leave the loop to everyone else for a while: catch-up uses at most `catchup_duty` of it
        spent = time.perf_counter() - t0
        duty = self.cfg.catchup_duty
        if duty < 1:
            await asyncio.sleep(spent * (1 - duty) / duty)
        return True

    async def _write(self, inputs: tuple[bytes, bytes, bytes], derived: tuple[bytes, bytes, bytes],
                     last_seq: int | None, now: int) -> list[Any]:
        """One server-side script call: every XADD of the batch, then the progress hash (see _WRITE_LUA). Returns
        [stream index, ms of its last input entry, ...]."""
        if self._keys_arg is None:
            self._keys_arg = [self._progress_key, *self._streams]
            self._maxlen_arg = _encode(self._maxlens)
        if self._script is None:
            self._script = self._client.register_script(_WRITE_LUA)  # type: ignore[union-attr]
        out = await self._script(keys=self._keys_arg, args=["" if last_seq is None else last_seq, now,
                                                            self._maxlen_arg, *inputs, *derived])
        if out[1]:
            self._st["duplicates"] += int(out[1])
        return out[2:]

    def _account(self, n: int, n_in: int, t0: float) -> None:
        ms = (time.perf_counter() - t0) * 1000
        st = self._st
        st["written"] += n
        st["inputs_written"] += n_in
        st["batches"] += 1
        st["last_batch_ms"] = round(ms, 3)
        if ms > st["max_batch_ms"]:
            st["max_batch_ms"] = round(ms, 3)

    async def _flush_pending_extras(self) -> None:
        for name in list(self._pending_state):
            await self._write_state(name, self._pending_state[name])
            del self._pending_state[name]
        for run_id in list(self._pending_summary):
            await self._write_summary(run_id, self._pending_summary[run_id])
            del self._pending_summary[run_id]

    async def _write_state(self, name: str, fields: dict[str, bytes]) -> None:
        client = self._client or self._new_client()
        key = f"{self.prefix}:learned:{name}"
        pipe = client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        await pipe.execute()

    async def _write_summary(self, run_id: str, fields: dict[str, bytes]) -> None:
        client = self._client or self._new_client()
        pipe = client.pipeline(transaction=True)
        key = f"{self.prefix}:run:{run_id}"
        pipe.delete(key)
        if fields:
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.zadd(f"{self.prefix}:runs", {run_id: time.time()})
        await pipe.execute()


def _take(chunks: deque[_Chunk], limit: int) -> list[_Chunk]:
    """The first chunks holding at most `limit` entries together (at least one chunk)."""
    out: list[_Chunk] = []
    n = 0
    for c in chunks:
        k = len(c.lens)
        if out and n + k > limit:
            break
        out.append(c)
        n += k
    return out


def _last_seq(journal_dir: Path) -> int:
    last = 0
    for seq, _payload in JournalReader(journal_dir):
        last = seq
    return last


def _state_fields(state: dict[str, Any]) -> dict[str, bytes]:
    if not isinstance(state, dict):
        raise TypeError("state must be a dict of plain values")
    fields: dict[str, bytes] = {}
    for k, v in state.items():
        if not isinstance(k, str) or k in _STATE_META:
            raise TypeError(f"state key {k!r} must be a str and not one of {_STATE_META}")
        try:
            fields[k] = msgspec.msgpack.encode(v)
        except TypeError as err:
            raise TypeError(f"state[{k!r}] is not plain data ({err}); use lists, dicts, numbers, strings") from None
    fields["_v"] = b"1"
    fields["_saved_ns"] = str(time.time_ns()).encode()
    return fields


def _state_from_fields(raw: dict[Any, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else k
        if name in _STATE_META:
            continue
        out[name] = msgspec.msgpack.decode(v)
    return out
