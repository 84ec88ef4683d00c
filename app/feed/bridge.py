"""DLL callback thread -> event loop hand-off.

The callback thread (or, with the native ring, the DLL owner thread with a whole batch) only appends an
already-copied event to a deque and, when no wake-up is pending, schedules one `drain` with `call_soon_threadsafe`.
Everything that arrives before the loop runs `drain` rides on the same wake-up, so the cost of waking the loop is
paid per batch, not per tick. The callback never waits for the loop.

Routing events (order updates, trading results, accounts) ride the same wake-up in a second deque: they are not
InputEvents (the market sink dispatches on type and must not see them), so `_drain` hands them to `routing_sink`
after the market batch; with no routing sink set they stay queued (`take_routing()` reads them), never dropped.

A drain takes at most `turn_events` market events; what is left is drained on the loop's next turn (`call_soon`),
so in a flood the journal, ZMQ and Valkey get the loop every chunk instead of after a backlog of seconds. The
events are the same and in the same order; only the batches are smaller.

`deque.append` / `popleft` are atomic under the GIL; `_pending` is cleared before draining so an event appended
during a drain either is taken by it or schedules the next one, and a drain that leaves events schedules the next
itself: nothing can be stranded.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Callable

from app.events import Event, InputEvent
from app.feed.base import Sink
from app.feed.clock import now_ns
from app.metrics import LatencyHistogram

log = logging.getLogger("app.feed.bridge")

_BATCH_EDGES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Bridge:
    def __init__(self, loop: asyncio.AbstractEventLoop, sink: Sink, warn_depth: int = 20_000,
                 routing_sink: Callable[[list[Event]], None] | None = None, turn_events: int = 1 << 62) -> None:
        self._loop = loop
        self.turn_events = turn_events
        self._sink = sink
        self._queue: deque[InputEvent] = deque()
        self._routing: deque[Event] = deque()
        self.routing_sink = routing_sink  # the loop's consumer of routing events; None = keep them queued
        self.routing_events = 0
        self._pending = False
        self._closed = False
        self.warn_depth = warn_depth
        # measured on the loop side only (the callback thread touches nothing but the deque and the flag)
        self.events = 0
        self.wakeups = 0
        self.max_depth = 0
        self.max_batch = 0
        self.lost_wakeups = 0  # the loop was closed under us; events stay in the deque
        self.batch_sizes = [0] * (len(_BATCH_EDGES) + 1)
        self.latency = LatencyHistogram()  # callback received_ns -> drained on the loop
        self._warned_at = 0
        # the native ring's owner thread, holding records back while this backlog is deep, sets hold_waiter (a
        # C call that ends its wait) and resume_depth; the loop calls it once, when the backlog is down to that
        self.hold_waiter: Callable[[], None] | None = None
        self.resume_depth = 0

    # -- callback thread ---------------------------------------------------------------------------------------
    def put(self, event: InputEvent) -> None:
        self._queue.append(event)
        if not self._pending:
            self._pending = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # loop closed: keep the event, never raise into the DLL
                self.lost_wakeups += 1

    def put_batch(self, events: list[InputEvent]) -> None:
        """A whole batch from the native ring's owner thread: one wake-up at most, as for put()."""
        self._queue.extend(events)
        if not self._pending:
            self._pending = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                self.lost_wakeups += 1

    def put_routing(self, event: Event) -> None:
        self._routing.append(event)
        if not self._pending:
            self._pending = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                self.lost_wakeups += 1

    # -- loop thread -------------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self._queue)

    def _drain(self) -> None:
        self._pending = False
        if self._queue:
            self._drain_market(self.turn_events)
        if self._routing and self.routing_sink is not None and not self._closed:
            self.routing_sink(self.take_routing())
        if self._queue and not self._pending and not self._closed:
            self._pending = True  # the rest on the next turn, after the I/O that is ready now
            self._loop.call_soon(self._drain)

    def take_routing(self) -> list[Event]:
        """The routing events queued so far (the loop side, when no routing_sink is set)."""
        routing = self._routing
        out = [routing.popleft() for _ in range(len(routing))]
        self.routing_events += len(out)
        return out

    def _drain_market(self, limit: int) -> None:
        queue = self._queue
        depth = len(queue)
        n = min(depth, limit)
        batch = [queue.popleft() for _ in range(n)]
        if self.hold_waiter is not None and depth - n <= self.resume_depth:
            waiter, self.hold_waiter = self.hold_waiter, None
            waiter()
        self.wakeups += 1
        self.events += n
        if depth > self.max_depth:
            self.max_depth = depth
            if depth > self.warn_depth and depth > self._warned_at * 2:
                self._warned_at = depth
                log.warning("bridge backlog %d events: the loop is falling behind the DLL", depth)
        if n > self.max_batch:
            self.max_batch = n
        i = 0
        while i < len(_BATCH_EDGES) and n > _BATCH_EDGES[i]:
            i += 1
        self.batch_sizes[i] += 1
        self.latency.record_elapsed(now_ns(), batch)
        if not self._closed:
            self._sink(batch)

    def flush(self) -> None:
        """Deliver whatever is queued now, all of it (used at stop, after the DLL stopped calling back)."""
        while self._queue and not self._closed:
            self._drain_market(self.turn_events)
        self._drain()

    def close(self) -> None:
        self.flush()
        self._closed = True

    def stats(self) -> dict[str, Any]:
        labels = [f"<={e}" for e in _BATCH_EDGES] + [f">{_BATCH_EDGES[-1]}"]
        return {
            "events": self.events,
            "wakeups": self.wakeups,
            "depth": self.depth,
            "max_depth": self.max_depth,
            "max_batch": self.max_batch,
            "mean_batch": round(self.events / self.wakeups, 2) if self.wakeups else 0.0,
            "batch_sizes": {label: c for label, c in zip(labels, self.batch_sizes) if c},
            "lost_wakeups": self.lost_wakeups,
            "routing_events": self.routing_events,
            "routing_queued": len(self._routing),
            "latency": self.latency.summary_us(),
        }
