"""The Valkey writer's in-memory side: ids for every event as it is enqueued (IdClock's rules, inlined: this is
the hot path), and the bounded backlogs of input and derived entries.

Beyond the bound, the oldest input entries fall back to the journal (catch-up reads them from there) and new
derived entries are dropped and counted. A mixin of ValkeyWriter; the state it uses is set up there.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from app.events import Event
from app.io import codec
from app.io.valkey_batch import Chunk as _Chunk
from app.io.valkey_keys import INPUT_TYPES as _INPUT_TYPES
from app.io.valkey_keys import NO_TICKER_KINDS, key_of


class BacklogMixin:
    cfg: Any
    prefix: str
    _wake: asyncio.Event
    _st: dict[str, Any]
    _seq: int
    _derived_n: int
    _inputs: deque[_Chunk]
    _derived: deque[_Chunk]
    _n_inputs: int
    _n_derived: int
    _ix_cache: dict[type, dict[Any, int]]
    _stream_ix: dict[str, int]
    _streams: list[str]
    _maxlens: list[str]
    _maxlen: dict[str, int]
    _timeless: list[bool]
    _live_ms: list[int]
    _derived_ms: list[int]
    _live_now: int
    _derived_now: int
    _floor_ms: int
    _keys_arg: list[str] | None

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
        n = self._n_inputs + self._n_derived
        if n > self._st["max_backlog"]:  # the high-water mark, so readers need not sample the backlog
            self._st["max_backlog"] = n
        if n >= step:
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
                    ms = prev or now or floor
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
                    ms = prev or dnow or floor
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
        self._derived.append(_Chunk(meta, list(map(len, payloads)), b"".join(payloads), 0, self._seq))
        self._n_derived += n

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
