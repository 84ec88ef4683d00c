"""ProcessFeed: the Feed the App sees with `feed.isolation = "process"`.

The DLL (real or stand-in) lives in a supervised child process (supervisor.py, child.py); this side only reads
copied events from a local socket on the loop, so this process has no DLL owner thread and never loads the DLL.
Every batch passes the dedupe (dedupe.py) before the sink, so what a restarted child repeats never reaches the
specialists.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Sequence

import msgspec

from app.config import Config
from app.events import InputEvent, RoutingEvent
from app.feed.base import FeedError, Sink
from app.feed.clock import now_ns
from app.feed.process import protocol
from app.feed.process.dedupe import Dedupe
from app.feed.process.routing_remote import RemoteRouter
from app.feed.process.child_handle import ChildHandle
from app.feed.process.supervisor import Supervisor
from app.metrics import LatencyHistogram

log = logging.getLogger("app.feed.process")

# stand-in counters that add up over children (the others describe the current child only)
_SIM_SUMMED = ("violations", "foreign_thread_calls", "accessor_misuse", "callbacks", "trades_generated",
               "trades_delivered", "undelivered", "callbacks_after_finalize")


class ProcessFeed:
    def __init__(self, cfg: Config, faults: Sequence[str] = ()) -> None:
        if cfg.feed.kind not in ("simulator", "profitdll"):
            raise FeedError(f"feed.isolation = \"process\" runs a DLL feed; feed.kind = {cfg.feed.kind!r} has none")
        self.cfg = cfg
        self.name = f"process:{cfg.feed.kind}"
        self.faults = list(faults)  # child faults for tests (child.py), given to the first child only
        self.later_faults: dict[int, list[str]] = {}  # tests: the faults of the child of that incarnation
        self.done = asyncio.Event()
        self.tickers: list[str] = []  # subscribed at start (resolved codes)
        self.dedupe = Dedupe()
        self.latency = LatencyHistogram()  # DLL callback in the child -> this loop
        self.messages = 0
        self.events = 0
        self.bytes = 0
        self.decode_errors = 0
        self.supervisor: Supervisor | None = None
        self._stopped: Supervisor | None = None  # the last one, kept for stats() after stop
        self._desired: list[str] | None = None  # what a restarted child subscribes
        self._sink: Sink | None = None
        self._decode = msgspec.msgpack.Decoder(list[InputEvent]).decode
        # feed.routing: orders go to the child's DLL (routing_remote.py); its order updates come back in order
        self.router: RemoteRouter | None = RemoteRouter(self) if cfg.feed.routing else None
        self.routing_sink: Any = None
        self.routing_held: deque[Any] = deque()  # routing events that came before a routing sink was set
        self.routing_events = 0
        self._decode_routing = msgspec.msgpack.Decoder(list[RoutingEvent]).decode

    def set_routing_sink(self, sink: Any) -> None:
        self.routing_sink = sink
        if self.routing_held:
            held = list(self.routing_held)
            self.routing_held.clear()
            sink(held)

    def _deliver_routing(self, payload: bytes) -> None:
        try:
            events = self._decode_routing(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.decode_errors += 1
            log.error("undecodable routing events from the feed child (%s)", exc)
            return
        self.routing_events += len(events)
        if self.routing_sink is None:
            self.routing_held.extend(events)
        else:
            self.routing_sink(events)

    async def start(self, sink: Sink) -> None:
        if self.supervisor is not None:
            return
        self._sink = sink
        self.done.clear()
        self._desired = None
        self.supervisor = Supervisor(self.cfg, self._deliver, self._next_child, self.faults, self.done.set,
                                     self._deliver_routing)
        self.supervisor.later_faults = self.later_faults
        try:
            info = await self.supervisor.start()
        except BaseException:
            self.supervisor = None
            raise
        self.tickers = list(info.get("tickers", []))
        self._desired = list(self.tickers)
        log.info("feed in a child process (pid %s); this process has no DLL thread", info.get("pid"))

    def _next_child(self) -> tuple[list[str] | None, dict[str, tuple[int, int, int]]]:
        """What the next child subscribes (None: feed.tickers) and where the stream it must continue stands."""
        if self._desired is None:
            return None, {}
        return list(self._desired), self.dedupe.resume_point(self._desired)

    def _deliver(self, child: ChildHandle, payload: bytes) -> None:
        """One message from the child: decode, dedupe, hand to the sink. Runs on the loop (the reader task)."""
        try:
            batch = self._decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.decode_errors += 1
            if self.decode_errors == 1:
                log.error("undecodable batch from the feed child (%s); counting and going on", exc)
            return
        self.messages += 1
        self.events += len(batch)
        self.bytes += len(payload)
        now = now_ns()
        record = self.latency.record
        for ev in batch:
            record(now - ev.received_ns)
        out = self.dedupe.filter(batch, child.on_state)
        if out and self._sink is not None:
            self._sink(out)

    async def stop(self, finalize: bool = False) -> None:
        """Stop the child gracefully (it finalizes its DLL: every child is a fresh process, so `finalize` makes
        no difference here) and deliver what it still sends; no sink call happens after this returns."""
        supervisor, self.supervisor = self.supervisor, None
        try:
            if supervisor is not None:
                self._stopped = supervisor
                await supervisor.stop()
        finally:
            self.done.set()

    async def subscribe(self, ticker: str) -> None:
        if self._desired is not None and ticker not in self._desired:
            self._desired.append(ticker)
        await self._command(protocol.SUBSCRIBE, ticker)

    async def unsubscribe(self, ticker: str) -> None:
        if self._desired is not None and ticker in self._desired:
            self._desired.remove(ticker)
        await self._command(protocol.UNSUBSCRIBE, ticker)

    async def _command(self, verb: bytes, ticker: str) -> None:
        child = self.supervisor.child if self.supervisor is not None else None
        if child is None or not child.ready.done():
            return  # between children: the next one subscribes the desired list
        try:
            await child.command(verb, ticker)
        except (FeedError, asyncio.TimeoutError, OSError):
            if child.alive and self.supervisor is not None and child is self.supervisor.child:
                raise
            # the child died meanwhile; its replacement subscribes the desired list

    def kill_child(self) -> None:
        """Chaos and tests: kill the child abruptly; the supervisor replaces it."""
        if self.supervisor is not None:
            self.supervisor.kill_child()

    def stats(self) -> dict[str, Any]:
        supervisor = self.supervisor or self._stopped
        out: dict[str, Any] = {"feed": self.name, "tickers": self.tickers}
        if supervisor is None:
            return out
        child = supervisor.child
        all_stats = list(supervisor.history)
        if child is not None and child.stats:
            all_stats.append(child.stats)
        latest = all_stats[-1] if all_stats else {}
        inner = latest.get("feed", {})
        if "dll" in inner:
            out["dll"] = inner["dll"]
        bridge = dict(inner.get("bridge", {}))
        bridge["child_latency"] = bridge.pop("latency", {})  # DLL callback -> the child's loop
        bridge["latency"] = self.latency.summary_us()  # DLL callback -> this loop, through the socket
        bridge["max_depth"] = max((s.get("feed", {}).get("bridge", {}).get("max_depth", 0) for s in all_stats),
                                  default=0)
        out["bridge"] = bridge
        if "simulator" in inner:
            sim = dict(inner["simulator"])
            for key in _SIM_SUMMED:
                sim[key] = sum(s.get("feed", {}).get("simulator", {}).get(key, 0) for s in all_stats)
            out["simulator"] = sim
        child_trades = sum(s.get("skipped_repeats", {}).get("trades", 0) for s in all_stats)
        child_books = sum(s.get("skipped_repeats", {}).get("books", 0) for s in all_stats)
        out["process"] = {
            **supervisor.stats(),
            # repeated trades (and book updates of a replayed stretch) kept from the sink: most are recognised
            # by the restarted child from its resume point and never sent, the rest here
            "duplicates_dropped": self.dedupe.duplicates_dropped + child_trades,
            "stale_books_dropped": self.dedupe.stale_books_dropped + child_books,
            "dropped_by_child": {"trades": child_trades, "books": child_books},
            "messages": self.messages,
            "events": self.events,
            "mean_batch": round(self.events / self.messages, 2) if self.messages else 0.0,
            "bytes": self.bytes,
            "decode_errors": self.decode_errors,
            **({"routing_events": self.routing_events, "routing_calls": self.router.calls,
                "sends_unanswered": self.router.unknown} if self.router is not None else {}),
            "child_sender": latest.get("sender", {}),
            "child_dropped_events": sum(s.get("sender", {}).get("dropped_events", 0) for s in all_stats),
        }
        return out
