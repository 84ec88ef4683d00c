"""Starting, watching and replacing the feed child.

A child is replaced when it exits (any code, a signal such as SIGABRT included), when it is silent for longer than
`feed.heartbeat_timeout`, or when it reports a lost market connection (a State with conn_type 2 and a result other
than MARKET_CONNECTED, MARKET_PERFORMANCE_WARNING or MARKET_PARTIAL_CONNECTED) that is not followed by MARKET_CONNECTED within
`feed.reconnect_grace` seconds. A live child is stopped with SIGTERM (it finalizes its DLL and flushes) and killed
if it is still there after a grace. The next child starts after `feed.restart_backoff` seconds, doubling per
failed attempt up to `feed.restart_backoff_max`, back to the first value once a child stayed up that long; after
`feed.max_restarts` restarts (0 = never) the supervisor gives up, logs one error and the feed is done.

Everything here runs on the loop thread: the child is a `subprocess.Popen` polled from the loop (asyncio's own
subprocess support would add a watcher thread on some loops) and both sockets are zmq.asyncio.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import tempfile
import time
from typing import Any, Callable

import zmq.asyncio

from app.config import Config
from app.feed.base import FeedError
from app.feed.process import protocol
from app.feed.process.child_handle import ChildHandle

log = logging.getLogger("app.feed.process")


class Supervisor:
    """Keeps one healthy child running; restarts it with backoff and counts why."""

    def __init__(self, cfg: Config, deliver: Callable[[ChildHandle, bytes], None],
                 child_args: Callable[[], tuple[list[str] | None, dict[str, tuple[int, int, int]]]], faults: list[str],
                 on_give_up: Callable[[], None], on_routing: Callable[[bytes], None] | None = None) -> None:
        self.cfg = cfg
        self.on_routing = on_routing
        self.deliver = deliver
        self.child_args = child_args  # (tickers a new child subscribes or None for feed.tickers, resume point)
        self.faults = faults
        self.later_faults: dict[int, list[str]] = {}  # tests: faults for the child of that incarnation
        self.on_give_up = on_give_up
        self.ctx: zmq.asyncio.Context | None = None
        self.directory = ""
        self.child: ChildHandle | None = None
        self.history: list[dict[str, Any]] = []  # the last stats of every child that ended
        self.incarnations = 0
        self.last_pid: int | None = None
        self.restarts = 0
        self.last_restart_reason = ""
        self.gave_up = False
        self.task: asyncio.Task[None] | None = None

    def ready_timeout(self) -> float:
        return self.cfg.feed.connect_timeout + 15.0  # the child's interpreter start and imports come first

    async def start(self) -> dict[str, Any]:
        """Start the first child and wait until it is subscribed; FeedError (no retry) if that fails."""
        self.ctx = zmq.asyncio.Context()
        self.directory = tempfile.mkdtemp(prefix=protocol.DIR_PREFIX)
        try:
            child, info = await self._spawn()
        except BaseException:
            await self._cleanup()
            raise
        self.task = asyncio.get_running_loop().create_task(self._supervise(child), name="feed-supervisor")
        return info

    async def _spawn(self) -> tuple[ChildHandle, dict[str, Any]]:
        assert self.ctx is not None
        child = ChildHandle(self.ctx, self.incarnations, self.deliver, self.cfg)
        if self.on_routing is not None:
            child.on_routing = self.on_routing
        faults = self.faults if self.incarnations == 0 else self.later_faults.get(self.incarnations, [])
        self.incarnations += 1
        self.child = child
        try:
            child.launch(self.directory, *self.child_args(), faults)
            self.last_pid = child.pid
            info = await child.wait_ready(self.ready_timeout())
        except BaseException:
            self._keep(child)
            self.child = None
            await child.retire()
            raise
        log.info("feed child running (pid %d, incarnation %d): %s", child.pid, child.incarnation,
                 ", ".join(info.get("tickers", [])))
        return child, info

    def _keep(self, child: ChildHandle) -> None:
        if child.stats:
            self.history.append(child.stats)

    async def _supervise(self, child: ChildHandle) -> None:
        feed_cfg = self.cfg.feed
        backoff = feed_cfg.restart_backoff
        try:
            while True:
                reason = await child.watch(feed_cfg.reconnect_grace, feed_cfg.heartbeat_timeout)
                if child.ready_at and time.monotonic() - child.ready_at >= feed_cfg.restart_backoff_max:
                    backoff = feed_cfg.restart_backoff  # it had been healthy: start the backoff over
                await child.retire()
                self._keep(child)
                self.child = None
                while True:
                    if feed_cfg.max_restarts and self.restarts >= feed_cfg.max_restarts:
                        self.gave_up = True
                        log.error("feed child failed (%s) and feed.max_restarts = %d restarts are used up; "
                                  "the feed stops", reason, feed_cfg.max_restarts)
                        self.on_give_up()
                        return
                    self.restarts += 1
                    self.last_restart_reason = reason
                    log.warning("restarting the feed child in %.1fs (restart %d): %s", backoff, self.restarts,
                                reason)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, feed_cfg.restart_backoff_max)
                    try:
                        child, _ = await self._spawn()
                        break
                    except FeedError as exc:
                        reason = str(exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("feed supervisor failed; the feed stops")
            self.on_give_up()

    async def stop(self) -> None:
        """Stop supervising and stop the child gracefully; no delivery happens after this returns."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None
        child, self.child = self.child, None
        if child is not None:
            await child.stop()
            self._keep(child)
        await self._cleanup()

    async def _cleanup(self) -> None:
        if self.child is not None:
            await self.child.close()
        if self.ctx is not None:
            self.ctx.term()
            self.ctx = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""

    def kill_child(self, sig: int = signal.SIGKILL if os.name == "posix" else signal.SIGTERM) -> None:
        """Chaos and tests: end the current child abruptly, as a crash of the DLL would."""
        if self.child is not None:
            self.child.signal(sig)

    def stats(self) -> dict[str, Any]:
        child = self.child
        return {"restarts": self.restarts, "incarnations": self.incarnations, "child_pid": self.last_pid,
                "child_alive": child is not None and child.alive,
                "last_restart_reason": self.last_restart_reason, "gave_up": self.gave_up}
