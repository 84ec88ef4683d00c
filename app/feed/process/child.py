"""The feed child: `python -m app.feed.process.child --events EP --control EP --config PATH [...]`.

It runs the ordinary in-process feed (DLL owner thread, callbacks, bridge: exactly thread mode) on an event loop
of its own; the bridge's sink encodes every drained batch into one msgpack message for the parent (protocol.py).
`feed.isolation` is ignored here: this process *is* the isolation.

A restarted child gets `--resume` (per ticker: the last trade number the parent delivered, its session end and how
many it delivered).
It drops the trades and book updates it repeats before they are sent (the stand-in replays its market from the
start) and, for the stand-in with `simulator.pace`, replays at full speed until every ticker is past that point,
then restores the pace: the stream continues where the previous child left it, not hours later.

Stopping: the `stop` command or SIGTERM finalizes the DLL, sends what is left, says `bye` and exits 0. SIGINT is
ignored because Ctrl-C in a terminal reaches the whole process group and the parent decides when the child stops.
A child whose parent died stops by itself. Exit codes: 0 stopped, 3 feed error (the line is on stderr and in an
`error` message), 2 bad arguments, 1 anything else.

Faults, for tests only (the parent passes them to its first child only, so a restart recovers):
  sim:NAME=VALUE   set a stand-in SIM_ parameter before initialize, e.g. sim:drop_after=500 and sim:drop_ms=-1
  reinit-after:N   once N events were sent, finalize the DLL and initialize it again, as a naive reconnect would;
                   with simulator.reinit = "abort" the stand-in aborts the process, as the real DLL crashes
  route-exit:N:W   the process dies (exit 70) during its Nth SendOrder: W = before (the ledger has the intent,
                   the DLL never got the call), inside (the DLL took the order, the ledger has no answer) or after
                   (the ledger has the answer, the parent never gets the reply)
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from app.cli import EXIT_CONFIG, EXIT_FEED
from app.config import Config
from app.events import Trade
from app.feed.base import FeedError
from app.feed.process import protocol, routing_remote
from app.feed.process.child_faults import arm_route_exit, parse_faults
from app.feed.process.dedupe import Dedupe
from app.loops import run as run_loop

log = logging.getLogger("app.feed.process.child")


class Sender:
    """The bridge's sink in the child: one message per drained batch; never blocks the child's loop.

    A send that finds the socket queue full (the parent stalled for a long time) parks the message in an ordered
    overflow flushed by a task; beyond `protocol.OVERFLOW_EVENTS` parked events further batches are dropped and
    counted, because a child that grows without bound would end as a crash that loses more.
    """

    def __init__(self, sock: zmq.Socket[Any]) -> None:
        self.sock = sock  # a plain (non-asyncio) socket: sends are NOBLOCK and never awaited
        self._encode = msgspec.msgpack.Encoder().encode
        self.overflow: deque[tuple[bytes, bytes, int]] = deque()
        self.overflow_events = 0
        self.messages = 0
        self.events = 0
        self.bytes = 0
        self.parked = 0  # messages that had to wait in the overflow
        self.dropped_events = 0
        self._flusher: asyncio.Task[None] | None = None

    def sink(self, batch: list[Any]) -> None:
        self.send(protocol.EVENTS, self._encode(batch), len(batch))

    def send_obj(self, kind: bytes, obj: Any) -> None:
        self.send(kind, self._encode(obj), 0)

    def send(self, kind: bytes, payload: bytes, n: int) -> None:
        if not self.overflow and self._try(kind, payload, n):
            return
        if kind == protocol.EVENTS and self.overflow_events + n > protocol.OVERFLOW_EVENTS:
            if not self.dropped_events:
                log.error("the parent is not reading (%d events parked); dropping events and counting them",
                          self.overflow_events)
            self.dropped_events += n
            return
        self.overflow.append((kind, payload, n))
        self.overflow_events += n
        self.parked += 1
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    def _try(self, kind: bytes, payload: bytes, n: int) -> bool:
        try:
            self.sock.send_multipart((kind, payload), flags=zmq.NOBLOCK)
        except zmq.Again:
            return False
        self.messages += 1
        self.events += n
        self.bytes += len(payload)
        return True

    async def _flush(self) -> None:
        try:
            while self.overflow:
                kind, payload, n = self.overflow[0]
                if self._try(kind, payload, n):
                    self.overflow.popleft()
                    self.overflow_events -= n
                else:
                    await asyncio.sleep(0.002)
        finally:
            self._flusher = None

    async def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.overflow and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    def stats(self) -> dict[str, Any]:
        return {"messages": self.messages, "events": self.events, "bytes": self.bytes, "parked": self.parked,
                "overflow_events": self.overflow_events, "dropped_events": self.dropped_events}


def inner_feed(cfg: Config, sim_params: dict[str, float]) -> Any:
    """The in-process feed of feed.kind, with the fault's SIM_ parameters applied right before initialize."""
    if cfg.feed.kind == "simulator":
        from app.feed.simulator import SimControl
        from app.feed.simulator.feed import SimulatorFeed

        feed: Any = SimulatorFeed(cfg)
        if sim_params:
            configure = feed.prepare

            async def prepare(session: Any) -> None:
                await configure(session)
                control = SimControl(session.lib.handle)
                for name, value in sim_params.items():
                    await session.owner.call(control.set, name, value)

            feed.prepare = prepare
        return feed
    if cfg.feed.kind == "profitdll":
        if sim_params:
            raise SystemExit("sim: faults need feed.kind = \"simulator\"")
        from app.feed.profitdll.feed import ProfitDllFeed

        return ProfitDllFeed(cfg)
    raise SystemExit(f"feed.kind {cfg.feed.kind!r} does not run in a child process")


class Child:
    def __init__(self, cfg: Config, args: argparse.Namespace) -> None:
        self.cfg = cfg
        self.args = args
        self.sim_params, self.reinit_after, self.route_exit = parse_faults(args.fault)
        self.route_hook: Any = None
        resume = msgspec.json.decode(args.resume, type=dict[str, tuple[int, int, int]]) if args.resume else {}
        self.dedupe: Dedupe | None = Dedupe(resume) if resume else None
        self.catching_up = set(resume)
        self.skipped = {"trades": 0, "books": 0, "seconds": 0.0}
        self.fast_forward = bool(resume) and cfg.feed.kind == "simulator" and cfg.simulator.pace
        if self.fast_forward:
            # flat out through as many trades as the previous children delivered (the stand-in replays the same
            # numbers), then paced: the stand-in switches by itself, since this loop sees the point only after the
            # flood that follows it, which through the native ring is tens of thousands of trades. Started once
            # every ticker is subscribed (_fast_forward): a flood begun at the first subscription runs that ticker
            # far ahead of the next, and the count is reached with the other one still replaying at real pace
            self.flood_until = sum(count for _, _, count in resume.values())
        self.feed = inner_feed(cfg, self.sim_params)
        self.started = time.monotonic()
        self.stopping = asyncio.Event()
        self.ppid = os.getppid()
        self.orphaned = False
        self.sender: Sender | None = None
        self.control: zmq.asyncio.Socket | None = None

    async def run(self) -> int:
        ctx = zmq.asyncio.Context()
        events = ctx.socket(zmq.PUSH)
        events.setsockopt(zmq.SNDHWM, protocol.HWM)
        events.connect(self.args.events)
        self.control = ctx.socket(zmq.PAIR)
        self.control.setsockopt(zmq.LINGER, 0)
        self.control.connect(self.args.control)
        self.sender = sender = Sender(zmq.Socket.shadow(events.underlying))
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        except (NotImplementedError, RuntimeError):  # Windows: the parent uses the stop command
            pass
        if self.cfg.feed.routing:  # order updates go to the parent on their own message kind, in order
            self.feed.set_routing_sink(lambda events: sender.send_obj(protocol.ROUTING, events))
        helpers = [loop.create_task(self._commands(), name="commands"),
                   loop.create_task(self._heartbeat(), name="heartbeat")]
        code, error, started = 0, "", False
        try:
            await self.feed.start(self.sink)
            started = True
            if self.fast_forward:
                await self._fast_forward()
            if self.route_exit and getattr(self.feed, "router", None) is not None:
                self.route_hook = arm_route_exit(self.feed.router, *self.route_exit)
            sender.send_obj(protocol.READY, {"pid": os.getpid(), "incarnation": self.args.incarnation,
                                             "tickers": list(self.feed.tickers)})
            sender.send_obj(protocol.STATS, self.stats())
            if self.reinit_after:
                helpers.append(loop.create_task(self._reinit_fault(self.reinit_after), name="fault"))
            stop = loop.create_task(self.stopping.wait())
            done, _ = await asyncio.wait([stop, *helpers], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            for task in done:
                if task is not stop and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        except FeedError as exc:
            code, error = EXIT_FEED, str(exc)
        except Exception as exc:
            log.exception("feed child failed")
            code, error = 1, f"{type(exc).__name__}: {exc}"
        finally:
            for task in helpers:
                task.cancel()
            try:
                await self.feed.stop(finalize=True)  # joins the DLL's threads; the bridge drains into the sender
            except Exception as exc:
                if not error:
                    code, error = EXIT_FEED, f"stopping the feed failed: {exc}"
            await sender.drain(5.0)
            if error:
                log.error("%s", error)  # on stderr, and to the parent, which says why the child ended
                sender.send(protocol.ERROR, error.encode(), 0)
            elif started:
                sender.send_obj(protocol.BYE, self.stats())
            # let the queued messages reach the parent (unless there is none any more)
            events.setsockopt(zmq.LINGER, 0 if self.orphaned else 10_000)
            events.close()
            self.control.close()
            ctx.term()
            if self.orphaned:
                remove_private_dir(self.args.events)
        return code

    def sink(self, batch: list[Any]) -> None:
        """The bridge's sink: drop what the previous child already delivered, then send."""
        dedupe = self.dedupe
        if dedupe is not None:
            batch = dedupe.filter(batch)
            pending = self.catching_up
            for ev in batch:
                if type(ev) is Trade and not ev.edit:
                    pending.discard(ev.ticker)
            if not pending:
                self._caught_up(dedupe)
            if not batch:
                return
        assert self.sender is not None
        self.sender.sink(batch)

    def _caught_up(self, dedupe: Dedupe) -> None:
        self.dedupe = None  # nothing repeats from here on; the parent still checks every trade
        self.skipped = {"trades": dedupe.duplicates_dropped, "books": dedupe.stale_books_dropped,
                        "seconds": round(time.monotonic() - self.started, 3)}
        log.info("caught up with the previous child's stream: skipped %d repeated trades and %d stale book updates",
                 dedupe.duplicates_dropped, dedupe.stale_books_dropped)
        if self.fast_forward:
            self._restore_pace()
        assert self.sender is not None
        self.sender.send_obj(protocol.STATS, self.stats())

    async def _fast_forward(self) -> None:
        from app.feed.simulator import SimControl

        session = self.feed.session
        control = SimControl(session.lib.handle)
        await session.owner.call(control.set, "flood_until", self.flood_until)
        await session.owner.call(control.set, "pace", 0)

    def _restore_pace(self) -> None:
        """Posted to the owner thread at once, not through a task: the stand-in floods until it runs, and through
        the native ring a flood outruns the loop by tens of thousands of trades a second."""
        from app.feed.simulator import SimControl

        session = self.feed.session
        session.owner.post(SimControl(session.lib.handle).set, "pace", 1,
                           on_error=lambda exc: log.warning("restoring the stand-in's pace failed: %s", exc))

    async def _commands(self) -> None:
        assert self.control is not None
        control = self.control
        while True:
            verb, *args = await control.recv_multipart()
            if verb == protocol.STOP:
                self.stopping.set()
                continue
            command_id, *rest = args
            if verb == protocol.ROUTE:  # runs on the DLL owner thread; the reply is the acknowledgement
                reply = await routing_remote.serve(getattr(self.feed, "router", None), rest[0])
                if self.route_hook is not None:
                    self.route_hook(reply)
                await control.send_multipart([protocol.REPLY, command_id, msgspec.msgpack.encode(reply)])
                continue
            reply: dict[str, Any] = {"ok": True, "error": ""}
            try:
                if verb == protocol.SUBSCRIBE:
                    await self.feed.subscribe(rest[0].decode())
                elif verb == protocol.UNSUBSCRIBE:
                    await self.feed.unsubscribe(rest[0].decode())
                else:
                    raise FeedError(f"unknown command {verb!r}")
            except Exception as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            await control.send_multipart([protocol.REPLY, command_id, msgspec.msgpack.encode(reply)])

    async def _heartbeat(self) -> None:
        assert self.sender is not None
        every = protocol.heartbeat_interval(self.cfg.feed.heartbeat_timeout)
        while True:
            await asyncio.sleep(every)
            if os.name == "posix" and os.getppid() != self.ppid:
                log.warning("the parent process is gone; stopping")
                self.orphaned = True
                self.stopping.set()
                return
            self.sender.send_obj(protocol.STATS, self.stats())

    async def _reinit_fault(self, after_events: int) -> None:
        assert self.sender is not None
        while self.sender.events < after_events:
            await asyncio.sleep(0.005)
        log.warning("fault reinit-after:%d: finalizing the DLL and initializing it again", after_events)
        session = self.feed.session
        assert session is not None
        await self.feed.stop(finalize=True)
        # straight to the library, past the binding's refusal: what a naive reconnect would do. The real DLL (and
        # the stand-in with reinit = "abort", its default) dies here
        await session.owner.call(session._dll_initialize, self.feed.credentials(), self.cfg.feed.routing,
                                 self.cfg.feed.trade_api, self.cfg.feed.book, False)
        log.warning("fault reinit-after:%d: the second initialize returned", after_events)
        await asyncio.Event().wait()

    def stats(self) -> dict[str, Any]:
        assert self.sender is not None
        skipped = self.skipped
        if self.dedupe is not None:  # still catching up
            skipped = {"trades": self.dedupe.duplicates_dropped, "books": self.dedupe.stale_books_dropped,
                       "seconds": None}
        return {"pid": os.getpid(), "incarnation": self.args.incarnation, "sent_at": time.time(),
                "feed": self.feed.stats(), "sender": self.sender.stats(), "skipped_repeats": skipped}


def remove_private_dir(endpoint: str) -> None:
    """The parent died without cleaning up: remove its private socket directory (ipc endpoints only)."""
    if endpoint.startswith("ipc://"):
        directory = Path(endpoint[len("ipc://"):]).parent
        if directory.name.startswith(protocol.DIR_PREFIX):
            shutil.rmtree(directory, ignore_errors=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m app.feed.process.child",
                                description="hmarl feed child (started by the process-isolation supervisor)")
    p.add_argument("--events", required=True, help="ZMQ endpoint the parent reads events from")
    p.add_argument("--control", required=True, help="ZMQ endpoint of the parent's command socket")
    p.add_argument("--config", required=True, help="path of the Config as JSON (msgspec)")
    p.add_argument("--tickers", default=None, help="JSON list of tickers to subscribe instead of feed.tickers")
    p.add_argument("--resume", default=None,
                   help="JSON {ticker: [last trade number, session end ns, trades delivered that session]}")
    p.add_argument("--incarnation", type=int, default=0, help="how many children the supervisor started before")
    p.add_argument("--fault", action="append", default=[], help="test fault (see the module docstring)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = msgspec.json.decode(Path(args.config).read_bytes(), type=Config)
        if args.tickers is not None:
            # plain assignment: the list the supervisor keeps may be empty for a moment (all unsubscribed)
            cfg.feed.tickers = msgspec.json.decode(args.tickers, type=list[str])
    except (OSError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        print(f"error: feed child: bad --config/--tickers: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=getattr(logging, cfg.run.log_level.upper()), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)-7s [feed child {os.getpid()}] %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return int(run_loop(lambda: Child(cfg, args).run(), sched_batch=cfg.run.sched_batch))  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
