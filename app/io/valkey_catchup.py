"""Journal catch-up for the Valkey writer: input events Valkey does not have yet are read back from the journal
and written with the same ids the live path would have given them (IdClock's rules, inlined for speed).

Damage is reported, never fatal: holes in the sequence (frames the reader skipped or the journal refused) are
counted as `lost` with the seqs named, and a frame whose checksum holds but which is no input event is skipped and
counted as `undecodable`. A mixin of ValkeyWriter; the state it uses is set up there.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import msgspec

from app.events import SCHEMA_VERSION
from app.io import codec
from app.io.journal_reader import JournalReader
from app.io.valkey_batch import encode as _encode
from app.io.valkey_batch import pack as _pack
from app.io.valkey_batch import take as _take
from app.io.valkey_keys import INPUT_KIND as _INPUT_KIND
from app.io.valkey_keys import NO_TICKER_KINDS, Head, head_decoder, stream_key

log = logging.getLogger("app.io.valkey")


class CatchUpMixin:
    _acked: int
    _journal_dir: Path | None
    _journal_obj: Any
    _tail: Any
    _st: dict[str, Any]
    _derived: Any
    _n_derived: int
    _clock_ack: Any
    _catchup_logged: bool
    _catchup_streams: dict[tuple[str, str | None], tuple[str, int, bool]]
    _seq: int
    _wake: asyncio.Event
    cfg: Any
    prefix: str
    run_id: str

    async def catch_up_journal(self, timeout: float | None = None) -> int:
        """Write a finished journal (one not being appended to by this writer) into Valkey, resuming from the
        server's progress hash; returns once all of it is acknowledged (or raises TimeoutError). For runs that
        ended with Valkey down: start a writer on that run's journal directory and call this."""
        if self._journal_dir is None:
            raise ValueError("catch_up_journal needs the writer to be given a journal")
        last = await asyncio.get_running_loop().run_in_executor(None, self._last_seq, self._journal_dir)
        self._seq = max(self._seq, last)
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._acked < last:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"valkey: caught up to {self._acked} of {last} in {timeout} s")
            await asyncio.sleep(0.02)
        return last

    def _catchup_stream(self, head: Head, payload: bytes) -> tuple[str, int, bool]:
        """(stream key, index, timeless) of a journal frame, checked as an input event of a known schema version."""
        if not 1 <= head.v <= SCHEMA_VERSION or head.type not in _INPUT_KIND:
            codec.decode_input(payload)  # raises the CodecError that says what is wrong
            raise codec.CodecError(f"not an input event: {head.type!r} (schema v{head.v})")
        kind = _INPUT_KIND[head.type]
        key = stream_key(self.prefix, kind, head.ticker)
        stream = self._catchup_streams[(head.type, head.ticker)] = (key, self._ix(key), kind in NO_TICKER_KINDS)
        return stream

    async def _catch_up_step(self, gap_end: int) -> bool:
        assert self._tail is not None
        want = self._acked + 1
        t0 = time.perf_counter()
        live_seq = self._seq
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
            if j is None and self._tail.exhausted:
                # a finished journal: nothing more will appear; what it lacks up to its last frame is unreadable
                self._st["lost"] += gap_end - self._acked
                log.error("valkey: the journal %s has no readable events %d..%d; they cannot be written to Valkey",
                          self._journal_dir, want, gap_end)
                self._acked = gap_end
                return True
            if j is not None and j.is_open and j.flushed_seq < want:
                await j.flush()  # have the journal write what we need now rather than in 50 ms
                return True
            return False  # not on disk yet: try again next interval
        self._note_holes(want, frames)
        # only the type, ticker and time of each frame matter here: a light decode, the stream by (type, ticker)
        # from a cache, the ack clock's rules (IdClock.ms) inlined
        head = head_decoder.decode
        streams = self._catchup_streams
        clock = self._clock_ack.copy()
        last, now, floor = clock.last, clock.now, clock.floor_ms
        schema = SCHEMA_VERSION
        meta: list[int] = []
        kept: list[bytes] = []
        for seq, payload in frames:
            try:
                h = head(payload)
                stream = streams.get((h.type, h.ticker))
                if stream is None or h.v != schema:
                    stream = self._catchup_stream(h, payload)
            except (msgspec.DecodeError, codec.CodecError) as err:
                # a frame whose checksum holds but whose content is no input event: it cannot be stored; say so
                # and go on (it used to stop the writer, and with it every later start)
                self._st["undecodable"] += 1
                log.error("valkey: journal %s frame seq %d is not an input event (%s); skipped (repair the journal "
                          "with `python -m app repair %s`)", self._journal_dir, seq, err, self.run_id)
                continue
            kept.append(payload)
            key, ix, _timeless = stream
            ts = h.ts
            prev = last.get(key, 0)
            if ts > 0:
                ms = ts // 1_000_000
                if ms > now:
                    now = ms
                if ms < prev:
                    ms = prev
            else:
                ms = prev or now or floor
            last[key] = ms
            meta += (ix, ms, seq)
        clock.now = now
        last_seq = frames[-1][0]
        derived = self._derived
        des = _take(derived, self.cfg.max_batch // 4, await self._journal_has()) if derived else []
        n_de = sum(len(c.lens) for c in des)
        payloads = kept
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
        # while the market flows, leave the loop to it for a while: catch-up uses at most `catchup_duty` of it; when
        # no input event came in during this step nobody is waiting for the loop, and sleeping would only leave
        # Valkey behind for longer (after a flood, catch-up went at half speed on an idle loop)
        duty = self.cfg.catchup_duty
        if duty < 1 and self._seq != live_seq:
            self._st["catchup_yields"] += 1
            await asyncio.sleep((time.perf_counter() - t0) * (1 - duty) / duty)
        return True

    def _note_holes(self, want: int, frames: list[tuple[int, bytes]]) -> None:
        """Seqs missing between the frames read (damaged frames the reader skipped, or frames the journal refused):
        they cannot reach Valkey; count and report them."""
        holes: list[str] = []
        missing = 0
        expect = want
        for seq, _payload in frames:
            if seq > expect:
                missing += seq - expect
                holes.append(str(expect) if seq == expect + 1 else f"{expect}..{seq - 1}")
            expect = seq + 1
        if missing:
            self._st["lost"] += missing
            log.error("valkey: run %s: journal seq %s missing (damaged or refused frames, %d events); they cannot be "
                      "written to Valkey", self.run_id, ", ".join(holes[:5]) + (" ..." if len(holes) > 5 else ""),
                      missing)

    @staticmethod
    def _last_seq(journal_dir: Path) -> int:
        last = 0
        for seq, _payload in JournalReader(journal_dir):
            last = seq
        return last
