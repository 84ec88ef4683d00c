"""The owner thread's side of the native callback ring: wait in C, drain a batch, hand it to the loop.

With feed.bridge = native (or auto with the ring built), the DLL calls the C callbacks of app/feed/native, whose
records wait in the ring until the DLL owner thread - the one Python thread that calls the DLL - drains them. Its
loop (OwnerThread with a pump) runs every queued DLL command first, then one `pump()`: one C call (ring_decode.c)
waits for records with the GIL released, copies up to a batch of them and converts them into events, and the bridge
takes the whole batch with at most one `call_soon_threadsafe`. So the DLL's threads never take the GIL for market
data, and a DLL command waits at most one batch, never a backlog (a command ends the wait before any drain).

Waiting: between batches the thread naps (`nap_s`, records do not wake it), so the DLL's threads never pay for a
wake system call while data flows; after `IDLE_NAPS` empty naps it sleeps until the next record wakes it (one wake
per burst). The naps run inside that C call (`ring_pump_wait`): an empty one costs no GIL and no Python. Naps pay only while
nearly every gap between batches is shorter than they last: the thread keeps a running share of the gaps its naps
would cover (`covered`) and stops napping below `NAP_OFF`, starting again above `NAP_ON`; when the flow trickles it
sleeps between batches, and the DLL's thread wakes it. A DLL command wakes it at once either way (`notify`). With
`HOLD_DEPTH` events already waiting on the loop it leaves the records where they are and sleeps until the loop,
down to `RESUME_DEPTH`, wakes it: an overloaded loop holds a bounded Python backlog.

Which path a session takes is decided once, at open (`choose`): the ring is one per process because a C callback
has no context pointer, so a second session in the same process gets the ctypes path.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from app.feed.base import FeedError
from app.feed.native import ring

if TYPE_CHECKING:
    from app.feed.profitdll.session import DllSession

log = logging.getLogger("app.feed.profitdll")

ENV_BRIDGE = "HMARL_FEED_BRIDGE"  # what feed.bridge = "auto" means (e.g. to run the test suite on the ctypes path)
BATCH_RECORDS = 4096  # records per drain: a DLL command queued behind a burst waits for at most this many
# empty naps in a row before sleeping until the next record: 1 ms of naps covers the gaps of a 5k/s flow (bench
# bridge n at 5k trades/s: wakes per 17.5k callbacks 950 -> 80, dwell p99 5.1-5.6 -> 3.3-3.8 us; 20 naps gained no
# more there)
IDLE_NAPS = 10
# Naps while at least NAP_ON of the recent gaps (a running share, COVER_ALPHA per batch) were shorter than IDLE_NAPS
# naps, none once fewer than NAP_OFF were. A gap the naps miss costs the DLL's thread the wake anyway, so below ~95 %
# they no longer lower its p99 and only cost: bench bridge n at 1k trades/s (SCHED_BATCH, half the gaps over 1 ms),
# napping took 167-178 us of CPU per event against 74-90 and a hand-off p50 of 90 against 53 us, for the same dwell
# p99 (9-11 vs 10 us); at 5k it keeps the dwell p99 at 1.5-1.7 us (5.1 without) for 75-83 vs 50-59 us per event
NAP_ON, NAP_OFF = 0.95, 0.85
COVER_ALPHA = 1.0 / 64
# events waiting on the loop above which the owner thread leaves records in the ring: an overloaded loop then holds
# a bounded Python backlog (~1.6 KB an event) and the rest waits as 64-byte records (the ring, then its overflow
# chain: counted, never dropped). Without it a 20k trades/s flood the loop could not follow grew the bridge's deque
# to 970k events and the process to 1.6 GB
HOLD_DEPTH = 4096
# while holding, the owner thread sleeps until the loop's backlog is down to RESUME_DEPTH (the loop wakes it: still
# ~2 turns of work on the loop when it does) or HOLD_WAIT_S passed. It used to nap 100 us and look again, but a
# nap ended at once with records in the ring: at full speed it went round ~50k times a second, 14 % of a core,
# each time taking the GIL from the loop
RESUME_DEPTH = HOLD_DEPTH // 2
HOLD_WAIT_S = 0.02
IDLE_WAIT_S = 0.25  # the longest sleep; nothing depends on it (records and commands wake the thread)

_claimed: list[Any] = [None]  # the session that owns this process's ring


def choose(configured: str) -> str:
    """"native" or "ctypes" for feed.bridge = configured; "auto" takes HMARL_FEED_BRIDGE when it is set. One clear
    error when the native ring is required but not built."""
    wanted = configured
    if configured == "auto" and os.environ.get(ENV_BRIDGE):
        wanted = os.environ[ENV_BRIDGE]
        if wanted not in ("auto", "native", "ctypes"):
            raise FeedError(f"{ENV_BRIDGE}={wanted!r} is not a bridge: use auto, native or ctypes")
        log.info("feed.bridge = auto: %s, from %s", wanted, ENV_BRIDGE)
    if wanted == "ctypes":
        return "ctypes"
    if ring.get() is None:
        if wanted == "native":
            raise FeedError("feed.bridge = \"native\" but the native callback ring is not built (no C compiler at "
                            "install time); install one and reinstall with `pip install -e .`, or set feed.bridge = "
                            "\"auto\" to use the ctypes callbacks")
        return "ctypes"
    return "native"


class NativeIntake:
    """One session's use of the process's native ring; every method but notify() runs on the owner thread."""

    def __init__(self, session: "DllSession", native: ring.NativeRing, nap_s: float) -> None:
        self.session = session
        self.ring = native
        self.nap_s = nap_s
        self.batches = 0
        self.naps = IDLE_NAPS if nap_s > 0 else 0  # before sleeping: IDLE_NAPS while naps cover the gaps, else 0
        self.covered = 1.0  # running share of the gaps between batches that IDLE_NAPS naps last longer than
        self.held = 0  # holds: the loop had HOLD_DEPTH events waiting
        self._wait = True  # whether the next pump() waits before draining (not right after a full batch)
        self.unrouted = 0
        self.callbacks = native  # the C callbacks, under the attribute names of Callbacks

    @classmethod
    def claim(cls, session: "DllSession", nap_s: float) -> "NativeIntake | None":
        """The intake for `session`, or None if another session of this process has the ring already."""
        native = ring.get()
        if native is None:
            return None
        if _claimed[0] is not None and _claimed[0] is not session:
            log.warning("the native callback ring is used by %s already: %s gets the ctypes callbacks",
                        _claimed[0].lib.path, session.lib.path)
            return None
        _claimed[0] = session
        return cls(session, native, nap_s)

    def arm(self, depth_levels: int, flush_add_ends_bracket: bool) -> None:
        """Allocate the ring before DLLInitialize (the state callback fires inside it). On the owner thread."""
        self.ring.consumer_thread()
        if not self.ring.running:
            self.ring.start(depth_levels, flush_add_ends_bracket, ring.accessors_of(self.session.lib),
                            on_state=self.session.on_state, on_invalid=self.session.invalid_tickers.add)

    # -- the owner thread's pump --------------------------------------------------------------------------------
    def pump(self) -> None:
        """Nap or sleep as the flow allows (in C, GIL released), then deliver the batch there is, if any."""
        r = self.ring
        bridge = self.session.bridge
        if bridge is not None and bridge.depth >= HOLD_DEPTH:
            self.held += 1
            bridge.resume_depth = RESUME_DEPTH
            bridge.hold_waiter = r.notify
            if bridge.depth >= HOLD_DEPTH:  # looked at again once armed: the loop may have drained meanwhile
                r.hold(HOLD_WAIT_S)
            bridge.hold_waiter = None
            return
        wait, nap_s = self._wait, self.nap_s  # (feed.ring_nap_us = 0: naps is 0, never nap)
        flags, n, nbytes, events = r.pump_batch(wait, nap_s, self.naps, IDLE_WAIT_S, IDLE_NAPS * nap_s, BATCH_RECORDS)
        if wait and nap_s > 0:
            covered = self.covered = self.covered + ((0.0 if flags & 8 else 1.0) - self.covered) * COVER_ALPHA
            if self.naps and covered < NAP_OFF:
                self.naps = 0
            elif not self.naps and covered >= NAP_ON:
                self.naps = IDLE_NAPS
        if events:
            self._deliver(events)
        # after a full batch more are probably waiting: the next turn drains at once, no nap
        self._wait = n < BATCH_RECORDS and nbytes * 2 <= ring.BUFFER_BYTES

    def notify(self) -> None:
        self.ring.notify()

    def _deliver(self, events: list[Any]) -> None:
        if not events:
            return
        self.batches += 1
        bridge = self.session.bridge
        if bridge is None:
            self.unrouted += len(events)
        else:
            bridge.put_batch(events)

    def finish(self) -> None:
        """After DLLFinalize returned (no callback can come any more): deliver what is left and free the ring."""
        if self.ring.running:
            self._deliver(self.ring.drain_all())
            self.ring.free()

    def stats(self) -> dict[str, Any]:
        s = self.ring.stats()
        return {
            "bridge_path": "native",
            "callback_errors": s.pop("callback_errors"),
            "last_callback_error": s.pop("last_callback_error"),
            "unrouted": self.unrouted,
            "dwell": s.pop("dwell"),
            "ring": {**s, "batches": self.batches, "held": self.held, "napping": self.naps > 0,
                     "gaps_covered": round(self.covered, 3)},
            **{k: s[k] for k in ("translate_errors", "depth_errors", "depth_books", "post_flush_adds")},
        }
