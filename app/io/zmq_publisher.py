"""The ZeroMQ stream: one PUB endpoint, two frames per message [topic, msgpack payload].

Sending never waits: every send is NOBLOCK. With `zmq.count_drops` (default) the socket is an XPUB with
XPUB_NODROP, so a subscriber whose queue reached `zmq.hwm` makes the send fail at once and the message is counted
as dropped (every subscriber misses that one message). With `count_drops = false` it behaves as a plain PUB: only
the slow subscriber loses messages, silently for us; subscribers always see their own losses as gaps in the
per-topic "seq" of the payloads. Messages no subscriber asked for (the XPUB reports every subscription) are never
handed to ZeroMQ. docs/OUTPUTS.md is the contract for subscribers in any language.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
import weakref
from typing import Any

import zmq

from app.config import ZmqConfig
from app.events import (Book, BrokerPosition, Decision, Event, Fill, InvalidTicker, Metric, Order, OrderUpdate,
                        Position, Reward, RiskBreach, RoutingAccount, Signal, State, Trade, TradingResult)
from app.io import codec, zmq_native

log = logging.getLogger("app.io.zmq")


def topic_of(event: Event) -> str:
    """The topic an event is published under (docs/OUTPUTS.md lists them all)."""
    t = type(event)
    if t is Trade:
        return f"trade.{event.ticker}"  # type: ignore[attr-defined]
    if t is Book:
        return f"book.{event.ticker}"  # type: ignore[attr-defined]
    if t is Signal:
        return f"signal.{event.agent}.{event.ticker}"  # type: ignore[attr-defined]
    if t is Decision:
        return f"decision.{event.ticker}"  # type: ignore[attr-defined]
    if t is Fill:
        return f"fill.{event.ticker}"  # type: ignore[attr-defined]
    if t is Order:
        return f"order.{event.ticker}"  # type: ignore[attr-defined]
    if t is Position:
        return f"position.{event.ticker}"  # type: ignore[attr-defined]
    if t is Reward:
        return f"reward.{event.agent}.{event.ticker}"  # type: ignore[attr-defined]
    if t is RiskBreach:
        return f"risk.{event.ticker}"  # type: ignore[attr-defined]
    if t is State or t is InvalidTicker:
        return "state"
    if t is Metric:
        return "metrics"
    if t is OrderUpdate:
        return f"order_update.{event.ticker}"  # type: ignore[attr-defined]
    if t is BrokerPosition:
        return f"broker_position.{event.ticker}"  # type: ignore[attr-defined]
    if t is TradingResult or t is RoutingAccount:
        return "routing"
    return type(event).__name__.lower()


# publish() finds an event's topic in two dict lookups: by type, then by ticker ((agent, ticker) for the types that
# carry an agent). The entry holds the topic's bytes and its "seq" counter.
_TICKER_TYPES = frozenset((Trade, Book, Decision, Fill, Order, Position, RiskBreach))


def _sub_key(event: Event) -> Any:
    t = type(event)
    if t is Signal or t is Reward:
        return (event.agent, event.ticker)  # type: ignore[attr-defined]
    return (getattr(event, "agent", None), getattr(event, "ticker", None))


# the Cython send of the socket, without the Python wrapper of zmq.Socket.send (routing_id/group handling we do not
# use): a third of the cost of a send on this path, and send_multipart is two of those plus a loop in Python
_send = zmq.backend.Socket.send
_SUB_CHECK = 0.001  # seconds between reads of the subscriptions while publishing
_EAGAIN, _EINTR = zmq.EAGAIN, errno.EINTR  # libzmq's EAGAIN as pyzmq knows it; EINTR is the C runtime's
# the subscription check runs on every publish that comes 1 ms after the last, i.e. on every batch at low rates:
# pyzmq's enum flags cost an `enum.Flag.__and__` in Python per check, plain ints and the Cython getter do not
_get, _EVENTS, _POLLIN = zmq.backend.Socket.get, int(zmq.EVENTS), int(zmq.POLLIN)


class Publisher:
    """publish() from the loop thread only; start()/close() around it."""

    def __init__(self, cfg: ZmqConfig, batch: bool = True) -> None:
        self.cfg = cfg
        # a whole batch's sends in one C call (app/io/zmq_batch.c), or pyzmq's one frame at a time
        self._batch = zmq_native.batch_sender() if batch else None
        self._handle = 0
        self.endpoint = cfg.endpoint
        self._ctx: zmq.Context[Any] | None = None
        self._sock: zmq.Socket[Any] | None = None
        # type -> ticker -> [topic bytes, seq, subscription generation, wanted by a subscriber]
        self._topics: dict[type, dict[Any, list[Any]]] = {}
        self._by_topic: dict[bytes, list[Any]] = {}
        self._sent = 0
        self._unsubscribed = 0
        self._dropped = 0
        self._errors = 0
        self._subscriptions: dict[bytes, int] = {}
        self._prefixes: tuple[bytes, ...] = ()  # what subscribers want, as the XPUB told us
        self._sub_gen = 0
        self._next_sub_check = 0.0
        self._sub_task: asyncio.Task[None] | None = None
        self._warned_drop = False
        self._finalizer: weakref.finalize | None = None

    async def start(self) -> None:
        if self._sock is not None:
            return
        ctx: zmq.Context[Any] = zmq.Context()
        sock = ctx.socket(zmq.XPUB)
        sock.setsockopt(zmq.SNDHWM, self.cfg.hwm)
        sock.setsockopt(zmq.LINGER, 0)
        if self.cfg.count_drops:
            sock.setsockopt(zmq.XPUB_NODROP, 1)
        try:
            sock.bind(self.cfg.endpoint)
        except zmq.ZMQError as err:
            sock.close(0)
            ctx.term()
            raise OSError(f"zmq: cannot bind {self.cfg.endpoint} ({err}); another hmarl may be running, "
                          f"or set zmq.endpoint to a free port") from None
        # a tcp://...:0 endpoint binds a free port; report the real one
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT) or self.cfg.endpoint
        self._ctx, self._sock = ctx, sock
        self._handle = sock.underlying
        # if close() is never reached (a crash on the way out), a live socket would make interpreter exit hang in
        # the context's term(): destroy both at garbage collection / exit instead
        self._finalizer = weakref.finalize(self, ctx.destroy, 0)
        self._topics.clear()
        self._by_topic.clear()
        self._subscriptions.clear()
        self._prefixes = ()
        self._sub_gen += 1
        self._next_sub_check = 0.0
        self._sub_task = asyncio.get_running_loop().create_task(self._read_subscriptions(), name="zmq-subscriptions")
        log.info("zmq: publishing on %s (hwm %d, count_drops %s)", self.endpoint, self.cfg.hwm, self.cfg.count_drops)

    def publish(self, events: list[Event], payloads: list[bytes] | None = None) -> None:
        """Send each event as [topic, payload + its topic's "seq"] with NOBLOCK; a full subscriber queue counts a
        drop. `payloads` are the events' `codec.encode` bytes when the caller already has them. Never awaits.

        A message no subscriber asked for is not handed to ZeroMQ at all (it would only discard it): it counts as
        sent (and as `no_subscriber`) and takes no "seq", which counts what ZeroMQ was given on the topic.
        Subscriptions are read at most every millisecond while publishing, so a new subscriber may miss up to that
        much more than ZeroMQ's own slow-joiner window (docs/OUTPUTS.md)."""
        sock = self._sock
        if sock is None or not events:
            return
        now = time.monotonic()
        if now >= self._next_sub_check:
            self._next_sub_check = now + _SUB_CHECK
            self._drain_subscriptions(sock)
        if not self._prefixes:  # nobody listens: nothing to encode or send
            self._sent += len(events)
            self._unsubscribed += len(events)
            return
        if payloads is None:
            payloads = codec.encode_batch(events)
        topics = self._topics
        gen = self._sub_gen
        # codec.with_seq, inlined for the usual fixmap payload: a new header with "v" and "seq", then the rest
        heads, encode_seq, join, with_seq = codec._WITH_V_SEQ, codec._encoder.encode, b"".join, codec.with_seq
        at = codec._AFTER_V
        ticker_types = _TICKER_TYPES
        frames: list[bytes] = []  # [topic, payload] of every message, handed to ZeroMQ below in one go
        add = frames.append
        unsubscribed = 0
        for event, payload in zip(events, payloads):
            t = type(event)
            by_sub = topics.get(t)
            if by_sub is None:
                by_sub = topics[t] = {}
            sub = event.ticker if t in ticker_types else _sub_key(event)  # type: ignore[attr-defined]
            entry = by_sub.get(sub)
            if entry is None:
                entry = by_sub[sub] = self._entry(event)
            if entry[2] != gen:
                entry[2] = gen
                entry[3] = entry[0].startswith(self._prefixes)
            if not entry[3]:
                unsubscribed += 1
                continue
            seq = entry[1] = entry[1] + 1
            head = heads.get(payload[0])
            add(entry[0])
            add(join((head, encode_seq(seq), payload[at:])) if head is not None else with_seq(payload, seq))
        sent = 0
        if frames:
            if self._batch is not None:
                sent, dropped, errors, last = self._batch(self._handle, frames, _EAGAIN, _EINTR)
                if dropped:
                    self._drop(dropped)
                if errors:
                    self._error(errors, zmq.ZMQError(last))
            else:
                sent = self._send_each(sock, frames)
        self._sent += sent + unsubscribed
        self._unsubscribed += unsubscribed

    def _send_each(self, sock: zmq.Socket[Any], frames: list[bytes]) -> int:
        """pyzmq's sends, message by message: the path without app.io._zmq_batch."""
        send, more, noblock = _send, zmq.SNDMORE | zmq.NOBLOCK, zmq.NOBLOCK
        sent = 0
        for i in range(0, len(frames), 2):
            try:
                # [topic, payload] as one message: once the first frame is queued, ZeroMQ queues the second
                send(sock, frames[i], more)
                send(sock, frames[i + 1], noblock)
                sent += 1
            except zmq.Again:
                self._drop(1)
            except zmq.ZMQError as err:
                self._error(1, err)
        return sent

    def _drop(self, n: int) -> None:
        self._dropped += n
        if not self._warned_drop:
            self._warned_drop = True
            log.warning("zmq: a subscriber is not keeping up (queue of %d full); dropping and counting", self.cfg.hwm)

    def _error(self, n: int, err: zmq.ZMQError) -> None:
        if self._errors == 0:
            log.error("zmq: send failed: %s", err)
        self._errors += n

    def _entry(self, event: Event) -> list[Any]:
        """[topic bytes, seq, subscription generation, wanted]: one per topic, shared by the types published under it
        (State, InvalidTicker share "state" and its seq)."""
        topic = topic_of(event).encode()
        entry = self._by_topic.get(topic)
        if entry is None:
            entry = self._by_topic[topic] = [topic, 0, -1, False]
        return entry

    def _drain_subscriptions(self, sock: zmq.Socket[Any]) -> None:
        """Read XPUB's subscribe/unsubscribe messages (one per distinct prefix: the socket is not verbose) and
        update the prefixes publish() sends to."""
        changed = False
        try:
            while _get(sock, _EVENTS) & _POLLIN:
                msg = sock.recv(zmq.NOBLOCK)
                if not msg:
                    continue
                prefix = msg[1:]
                if msg[0] == 1:
                    self._subscriptions[prefix] = self._subscriptions.get(prefix, 0) + 1
                    changed = True
                elif msg[0] == 0 and self._subscriptions.get(prefix):
                    self._subscriptions[prefix] -= 1
                    changed = True
        except zmq.ZMQError:
            return
        if changed:
            self._prefixes = tuple(p for p, n in self._subscriptions.items() if n > 0)
            self._sub_gen += 1

    async def close(self) -> None:
        if self._sub_task is not None:
            self._sub_task.cancel()
            try:
                await self._sub_task
            except asyncio.CancelledError:
                pass
            self._sub_task = None
        self._sock = None
        self._ctx = None
        if self._finalizer is not None:
            self._finalizer()  # ctx.destroy(linger=0): closes the socket, then terminates the context
            self._finalizer = None

    def stats(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "sent": self._sent, "dropped": self._dropped, "errors": self._errors,
                "subscribed_prefixes": len(self._prefixes), "no_subscriber": self._unsubscribed}

    async def _read_subscriptions(self) -> None:
        """Keep reading subscriptions while nothing is published (so they never pile up and stats() is current)."""
        while True:
            await asyncio.sleep(0.2)
            sock = self._sock
            if sock is None:
                return
            self._drain_subscriptions(sock)
