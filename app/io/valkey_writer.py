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
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import ValkeyConfig
from app.io import heap
from app.io.heap import release_free_memory
from app.io.journal import JournalError, JournalTail
from app.io.valkey_backlog import BacklogMixin
from app.io.valkey_batch import WRITE_LUA as _WRITE_LUA
from app.io.valkey_batch import Chunk as _Chunk
from app.io.valkey_batch import encode as _encode
from app.io.valkey_batch import pack as _pack
from app.io.valkey_batch import take as _take
from app.io.valkey_catchup import CatchUpMixin
from app.io.valkey_extras import ExtrasMixin, ValkeyUnavailable  # noqa: F401 - importable from here as before
# the names other modules and tests import from here
from app.io.valkey_keys import (INPUT_KINDS, INPUT_TYPES, KIND_OF, KINDS, NO_TICKER_KINDS, IdClock,  # noqa: F401
                                entries_from_journal, key_of, run_start_ms, stream_key)
from app.io.valkey_script import HeldScript
from app.io.valkey_server import mask_url, normalize_url

log = logging.getLogger("app.io.valkey")

_CONN_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError, asyncio.TimeoutError)


class ValkeyWriter(BacklogMixin, CatchUpMixin, ExtrasMixin):
    """See the module docstring. `journal` is the run's Journal (preferred) or its directory, or None. The
    mixins hold the backlog (valkey_backlog), journal catch-up (valkey_catchup) and learned state (valkey_extras)."""

    _CONN_ERRORS = _CONN_ERRORS

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
        if self._journal_obj is not None and hasattr(journal, "on_written"):
            # what the journal just wrote may go now: at low rates one loop wake-up serves both, not one timer each
            journal.on_written = self._wake.set
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
        self._trim_after = False  # set by a reconnect: trim the heap once the outage is caught up
        self._wiring_warned = False
        self.error: str | None = None  # why writes fail right now (unreachable, refused); None when they go in
        self.last_error: str | None = None  # the latest failure of the run, kept after it clears
        self._error_since: float | None = None
        self._partial = False  # the last live batch was not full
        self._next_lost_log = 0.0
        # while an earlier run is written in from its journal this run's inputs wait (in the backlog, then the
        # journal): stream ids only grow, and the earlier run's are older (see Pipeline._catch_up_earlier_runs)
        self.hold_inputs = False
        # only a run with a journal has late streams: a replay of old tapes into newer streams must not copy itself
        # into Valkey under late keys (docs/OUTPUTS.md: give replays their own prefix)
        self._late_arg = f"{self.prefix}:late:{self.run_id}:" if self._journal_dir is not None else ""
        self._st = {"written": 0, "inputs_written": 0, "caught_up": 0, "dropped": 0, "spilled": 0, "lost": 0,
                    "duplicates": 0, "late": 0, "undecodable": 0, "reconnects": 0, "batches": 0,
                    "catchup_yields": 0, "max_backlog": 0,
                    "last_batch_ms": 0.0, "max_batch_ms": 0.0, "errors": 0}

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
        self._script = None  # bound to the client below on the first write
        self._client = redis.from_url(self.url, socket_timeout=self.cfg.timeout,
                                      socket_connect_timeout=self.cfg.timeout, retry=Retry(NoBackoff(), 0),
                                      health_check_interval=0)
        await self._connect()
        if not self._connected:
            log.warning("valkey: %s not reachable at start; running without it and retrying in the background",
                        mask_url(self.url))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="valkey-writer")

    async def close(self, timeout: float | None = None) -> None:
        """Write what is pending (at most `timeout`, default `close_timeout` seconds), then disconnect."""
        if self._task is None:
            return
        self._closing = True
        self._wake.set()
        wait = self.cfg.close_timeout if timeout is None else max(0.0, min(timeout, self.cfg.close_timeout))
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=wait)
        except asyncio.TimeoutError:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            pending = self._seq - self._acked
            j = self._journal_obj
            where = (f"the journal {self._journal_dir} has them up to seq {j.flushed_seq}" if j is not None
                     else f"they are in the journal {self._journal_dir}" if self._journal_dir else "no journal")
            log.warning("valkey: closed with %d input events not yet in Valkey (%s), %d derived events, %d learned "
                        "states and %d run summaries unwritten", pending, where, self._n_derived,
                        len(self._pending_state), len(self._pending_summary))
        finally:
            self._task = None
            if self._client is not None:
                try:
                    await asyncio.wait_for(self._client.aclose(), timeout=1.0)
                except Exception:  # noqa: BLE001 - a server that never answers must not hold the stop
                    pass
                self._client = None
            if self._tail is not None:
                await self._tail.close()

    async def abort(self) -> None:
        """Stop at once without writing what is pending (a stop that must not wait); the journal keeps it all."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._task = None
        if self._client is not None:
            try:
                await self._client.aclose()
            except Exception:  # noqa: BLE001
                pass
            self._client = None
        if self._tail is not None:
            await self._tail.close()

    def release_inputs(self) -> None:
        """End `hold_inputs`: this run's input events go to Valkey again (from the journal what was spilled)."""
        self.hold_inputs = False
        self._wake.set()

    # -- hot path ------------------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self._st)
        gap = self._gap_end() - self._acked if self._journal_dir is not None else 0
        out.update(heap_trims=heap.released, connected=self._connected, backlog=self._n_inputs + self._n_derived, derived_pending=self._n_derived,
                   backlog_bound=self.cfg.backlog, error=self.error, last_error=self.last_error,
                   error_for_s=round(time.monotonic() - self._error_since, 1) if self._error_since else 0.0,
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
            self._set_error(f"unreachable ({err or type(err).__name__})")
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
            self._trim_after = True
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
                self._set_error(f"connection lost ({err or type(err).__name__})")
                log.warning("valkey: connection lost (%s); backing off, catching up from the journal later", err)
                continue
            except RedisError as err:
                self._st["errors"] += 1
                self._connected = False
                self._down_since = time.monotonic()
                if self.error is None or not self.error.startswith("write refused"):
                    log.error("valkey: write refused (%s); retrying (the journal keeps every input event)", err)
                self._set_error(f"write refused ({type(err).__name__}: {err})")  # e.g. OutOfMemoryError, MISCONF
                await self._nap(backoff, wakeable=False)
                backoff = min(backoff * 2, self.cfg.backoff_max)
                continue
            if self._trim_after and self._caught_up():
                # the outage's backlog and catch-up buffers are all freed now: hand their pages back (app.io.heap)
                self._trim_after = False
                release_free_memory()
            if wrote and self.error is not None:
                log.warning("valkey: writes go in again after %.1f s (%s)",
                            time.monotonic() - (self._error_since or time.monotonic()), self.error)
                self.error = None
                self._error_since = None
            if not wrote:
                if self._closing and not self._has_work():
                    return
                await self._nap(interval)
            elif self._partial and not self._closing:
                # less than a full batch was waiting: let the next one fill for up to an interval (enqueue wakes us
                # as soon as `max_batch` entries wait) rather than paying a call per handful of entries
                await self._nap(interval)

    def _set_error(self, why: str) -> None:
        if self.error is None:
            self._error_since = time.monotonic()
        self.error = self.last_error = why

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
        try:  # asyncio.timeout, not wait_for: wait_for makes a Task per call, 20 times a second even when idle
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()

    def _caught_up(self) -> bool:
        """Back to live: no more than one batch waiting and nothing left to read back from the journal."""
        return (self._n_inputs + self._n_derived <= self.cfg.max_batch
                and (self._journal_dir is None or self._acked >= self._gap_end()))

    def _has_work(self) -> bool:
        if self.hold_inputs:
            return bool(self._derived or self._pending_state or self._pending_summary)
        return bool(self._inputs or self._derived or self._pending_state or self._pending_summary
                    or (self._journal_dir is not None and self._acked < self._gap_end()))

    async def _step(self) -> bool:
        """One transaction: journal catch-up if there is a gap before the backlog, else live entries."""
        self._partial = False
        if self.hold_inputs:
            return await self._live_step(inputs_too=False)
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

    async def _journal_has(self, inputs_too: bool = True) -> int | None:
        """The journal leads: entries go to Valkey only once the journal holds what they come from on disk, so
        Valkey never has an event the journal lacks (even after kill -9 of the app). Returns the seq up to which
        entries may go (None: no journal of this run to wait for)."""
        j = self._journal_obj
        if j is None or not j.is_open:
            return None
        target = self._seq
        if j.settled_seq < target and not self._on_disk(j.settled_seq, inputs_too):
            # nothing waiting is on disk yet: the journal writes now rather than at its next interval. When some is
            # (a sustained flow), that goes first and the journal keeps its own pace: waiting for it to write the
            # newest events took a flood's writer ~0.1 s of every ~0.28 s step (loop turns), not counting Valkey's
            await j.flush()
        return target if j.settled_seq >= target else j.flushed_seq

    def _on_disk(self, upto: int, inputs_too: bool) -> bool:
        """Whether the oldest waiting entries may go already (the journal holds what they come from)."""
        inputs, derived = self._inputs, self._derived
        return bool(inputs_too and inputs and inputs[0].after <= upto or derived and derived[0].after <= upto)

    async def _live_step(self, inputs_too: bool = True) -> bool:
        inputs, derived = self._inputs if inputs_too else deque(), self._derived
        if not inputs and not derived:
            return False
        upto = await self._journal_has(inputs_too)
        if inputs_too and inputs and inputs[0].first > self._acked + 1:
            return True  # the backlog spilled while we waited for the journal: catch-up first (see _step)
        max_batch = self.cfg.max_batch
        t0 = time.perf_counter()
        # less than a full batch waiting: after this one, let the next fill for a while (see _run)
        self._partial = self._n_inputs + self._n_derived < max_batch
        ins = _take(inputs, max_batch, upto)
        n_in = sum(len(c.lens) for c in ins)
        des = _take(derived, max(max_batch - n_in, max_batch // 4), upto)
        if not ins and not des:
            return False
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

    async def _write(self, inputs: tuple[bytes, bytes, bytes], derived: tuple[bytes, bytes, bytes],
                     last_seq: int | None, now: int) -> list[Any]:
        """One server-side script call: every XADD of the batch, then the progress hash (see _WRITE_LUA). Returns
        [stream index, ms of its last input entry, ...]."""
        if self._keys_arg is None:
            self._keys_arg = [self._progress_key, *self._streams]
            self._maxlen_arg = _encode(self._maxlens)
        if self._script is None:
            self._script = HeldScript(self._client, _WRITE_LUA)
        out = await self._script(self._keys_arg, ["" if last_seq is None else last_seq, now, self._maxlen_arg,
                                                  *inputs, *derived, self._late_arg, len(self.prefix) + 1])
        if out[1]:
            self._st["duplicates"] += int(out[1])
        if out[2]:
            if not self._st["late"]:
                log.warning("valkey: run %s has events older than what its streams already hold (a later run wrote "
                            "first); they are stored under %s* with their own ids", self.run_id, self._late_arg)
            self._st["late"] += int(out[2])
        return out[3:]

    def _account(self, n: int, n_in: int, t0: float) -> None:
        ms = (time.perf_counter() - t0) * 1000
        st = self._st
        st["written"] += n
        st["inputs_written"] += n_in
        st["batches"] += 1
        st["last_batch_ms"] = round(ms, 3)
        if ms > st["max_batch_ms"]:
            st["max_batch_ms"] = round(ms, 3)
