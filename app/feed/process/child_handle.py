"""One feed child process as the supervisor sees it: its two sockets, the task reading its messages, its health.

Split from supervisor.py (which starts, watches and replaces children); everything here runs on the loop thread.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import msgspec
import zmq
import zmq.asyncio

from app.config import Config
from app.events import State
from app.feed.base import FeedError
from app.feed.process import protocol

log = logging.getLogger("app.feed.process")

_TICK = 0.05  # seconds between checks of a child's health
_TERM_GRACE = 3.0  # seconds a child gets to finalize after SIGTERM before SIGKILL
_STOP_TIMEOUT = 10.0  # seconds a graceful stop may take before the child is killed
_MARKET, _CONNECTED, _PERFORMANCE_WARNING, _PARTIAL_CONNECTED = 2, 4, 5, 6
_ROUTING, _BROKER_CONNECTED = 1, 5
# where the `app` package lives, so the child imports the same code however the parent was started
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])


def describe_exit(code: int, error: str) -> str:
    if code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    return f"child {how}" + (f": {error}" if error else "")


class ChildHandle:
    """One child process: its two sockets, the task reading its events and what it said last."""

    _ids = itertools.count(1)

    def __init__(self, ctx: zmq.asyncio.Context, incarnation: int, deliver: Callable[["ChildHandle", bytes], None],
                 cfg: Config) -> None:
        self.ctx = ctx
        self.incarnation = incarnation
        self.deliver = deliver
        self.cfg = cfg
        self.proc: subprocess.Popen[bytes] | None = None
        self.events = ctx.socket(zmq.PULL)
        self.events.setsockopt(zmq.RCVHWM, protocol.HWM)
        self.events.setsockopt(zmq.LINGER, 0)
        self.control = ctx.socket(zmq.PAIR)
        self.control.setsockopt(zmq.LINGER, 0)
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.bye = asyncio.Event()
        self.error = ""
        self.stats: dict[str, Any] = {}
        self.started_at = time.monotonic()
        self.ready_at = 0.0
        self.last_rx = time.monotonic()
        self.lost_since: float | None = None
        self.lost_name = ""
        self.messages = 0
        self.reader: asyncio.Task[None] | None = None
        self.on_routing: Callable[[bytes], None] = lambda payload: None
        # routing as the child's State events say (the same rule as DllSession.routing_connects, which the child
        # checks each send against)
        self.routing_state = -1
        self.routing_connects = 0
        self._lock = asyncio.Lock()
        self._files: list[Path] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self, directory: str, tickers: list[str] | None, resume: dict[str, tuple[int, int, int]],
               faults: list[str]) -> None:
        ev_endpoint, ctl_endpoint = protocol.endpoints(directory, self.incarnation)
        self.events.bind(ev_endpoint)
        self.control.bind(ctl_endpoint)
        config = Path(directory) / f"config-{self.incarnation}.json"
        config.write_bytes(msgspec.json.encode(self.cfg))
        self._files.append(config)
        argv = [sys.executable, "-m", "app.feed.process.child",
                "--events", self.events.getsockopt_string(zmq.LAST_ENDPOINT),
                "--control", self.control.getsockopt_string(zmq.LAST_ENDPOINT),
                "--config", str(config), "--incarnation", str(self.incarnation)]
        if tickers is not None:
            argv += ["--tickers", msgspec.json.encode(tickers).decode()]
        if resume:
            argv += ["--resume", msgspec.json.encode(resume).decode()]
        for fault in faults:
            argv += ["--fault", fault]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        # stdout stays clean for the parent's own output (run --json); the child's log lines share our stderr
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)
        self.started_at = self.last_rx = time.monotonic()
        self.reader = asyncio.get_running_loop().create_task(self._read(), name=f"feed-child-{self.incarnation}")

    async def _read(self) -> None:
        recv = self.events.recv_multipart
        decode = msgspec.msgpack.decode
        deliver = self.deliver
        n = 0
        while True:
            kind, payload = await recv()
            self.last_rx = time.monotonic()
            self.messages += 1
            if kind == protocol.EVENTS:
                try:
                    deliver(self, payload)
                except Exception as exc:  # like a failing drain in thread mode: reported, the stream goes on
                    asyncio.get_running_loop().call_exception_handler(
                        {"message": "feed sink failed on a batch from the child", "exception": exc})
            elif kind == protocol.ROUTING:
                self.on_routing(payload)
            elif kind == protocol.STATS:
                self.stats = decode(payload)
            elif kind == protocol.READY:
                self.ready_at = self.last_rx
                if not self.ready.done():
                    self.ready.set_result(decode(payload))
            elif kind == protocol.ERROR:
                self.error = payload.decode(errors="replace")
            elif kind == protocol.BYE:
                self.stats = decode(payload)
                self.bye.set()
            n += 1
            if n % 64 == 0:  # during a flood every recv completes at once: let the rest of the loop run too
                await asyncio.sleep(0)

    @property
    def routing_connected(self) -> bool:
        return self.routing_state == _BROKER_CONNECTED

    def on_state(self, ev: State) -> None:
        """Called for every State the child forwards, before the batch reaches the sink."""
        if ev.conn_type == _ROUTING:
            if ev.result == _BROKER_CONNECTED and self.routing_state != ev.result:
                self.routing_connects += 1
            self.routing_state = ev.result
            return
        if ev.conn_type != _MARKET:
            return
        if ev.result == _CONNECTED:
            self.lost_since = None
        elif ev.result not in (_PERFORMANCE_WARNING, _PARTIAL_CONNECTED) and self.lost_since is None:
            # 5 and 6 say this client is slow (the server feed is fine): a new child would not be faster
            self.lost_since, self.lost_name = time.monotonic(), ev.name

    async def wait_ready(self, timeout: float) -> dict[str, Any]:
        """The child's `ready` message; FeedError if it exits or does not get there in time."""
        deadline = time.monotonic() + timeout
        while not self.ready.done():
            code = self.proc.poll() if self.proc is not None else None
            if code is not None:
                await self._settle()
                raise FeedError(f"the feed child did not start: {describe_exit(code, self.error)}")
            if time.monotonic() > deadline:
                raise FeedError(f"the feed child did not report ready within {timeout:g}s")
            await asyncio.sleep(_TICK)
        return self.ready.result()

    async def watch(self, reconnect_grace: float, heartbeat_timeout: float) -> str:
        """Returns, as one line, why this child must be replaced."""
        while True:
            code = self.proc.poll() if self.proc is not None else None
            if code is not None:
                await self._settle()
                return describe_exit(code, self.error)
            now = time.monotonic()
            if now - self.last_rx > heartbeat_timeout:
                # our own loop may have been the one stalled: give the reader a moment with what is queued
                await asyncio.sleep(_TICK * 4)
                silent = time.monotonic() - self.last_rx
                if silent > heartbeat_timeout:
                    return f"no message from the child for {silent:.1f}s (heartbeat timeout)"
            if self.lost_since is not None and now - self.lost_since > reconnect_grace:
                return (f"market connection lost ({self.lost_name}) and not back within "
                        f"feed.reconnect_grace = {reconnect_grace:g}s")
            await asyncio.sleep(_TICK)

    async def _settle(self, quiet: float = 0.1, limit: float = 1.0) -> None:
        """After the child exited: let the reader take what it had already written (until quiet, bounded)."""
        start = time.monotonic()
        while not self.bye.is_set():
            now = time.monotonic()
            if now - start >= limit or (now - start >= quiet and now - self.last_rx >= quiet):
                return
            await asyncio.sleep(0.02)

    async def command(self, verb: bytes, *args: str, timeout: float = 10.0) -> None:
        """Run a command in the child and wait for its reply; FeedError when it fails."""
        reply = await self.request(verb, *(a.encode() for a in args), timeout=timeout)
        if not reply.get("ok"):
            raise FeedError(f"feed child: {verb.decode()} {' '.join(args)} failed: {reply.get('error')}")

    async def request(self, verb: bytes, *args: bytes, timeout: float = 10.0) -> dict[str, Any]:
        """Send one command and return the child's reply as a dict; TimeoutError when none comes in time (the
        child died or hangs: the command may or may not have run)."""
        async with self._lock:
            command_id = str(next(self._ids)).encode()
            await asyncio.wait_for(self.control.send_multipart([verb, command_id, *args]), timeout)
            deadline = time.monotonic() + timeout
            while True:
                frames = await asyncio.wait_for(self._recv_reply(), max(0.0, deadline - time.monotonic()))
                if len(frames) == 3 and frames[0] == protocol.REPLY and frames[1] == command_id:
                    break  # an earlier, timed-out command's late reply is skipped
            return msgspec.msgpack.decode(frames[2])

    async def _recv_reply(self) -> list[bytes]:
        """The control socket's next message, or TimeoutError as soon as the child is gone (a dead child never
        answers: waiting out the whole timeout would only hold up whoever asked)."""
        recv = asyncio.ensure_future(self.control.recv_multipart())
        try:
            while True:
                done, _ = await asyncio.wait([recv], timeout=_TICK)
                if done:
                    return recv.result()
                if not self.alive:
                    raise asyncio.TimeoutError("the feed child exited")
        finally:
            if not recv.done():
                recv.cancel()

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def _request_stop(self) -> None:
        try:
            self.control.send_multipart([protocol.STOP], flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # not connected (yet): the signal below does it
        if os.name == "posix":
            self.signal(signal.SIGTERM)

    async def _wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self, timeout: float = _STOP_TIMEOUT) -> None:
        """Graceful: the child finalizes its DLL and sends everything before `bye`; killed if it takes too long."""
        if self.alive:
            self._request_stop()
            deadline = time.monotonic() + timeout
            while self.alive and not self.bye.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if not await self._wait_exit(max(0.5, deadline - time.monotonic())):
                log.warning("feed child %s did not stop within %gs; killing it", self.pid, timeout)
                self.proc.kill()  # type: ignore[union-attr]
                await self._wait_exit(5.0)
        if not self.bye.is_set():
            await self._settle()
        await self.close()

    async def retire(self) -> None:
        """Replace-time stop: SIGTERM (finalize, flush), SIGKILL after a short grace; then read what arrived."""
        if self.alive:
            self._request_stop()
            if not await self._wait_exit(_TERM_GRACE):
                log.warning("feed child %s still alive %gs after SIGTERM; killing it", self.pid, _TERM_GRACE)
                self.proc.kill()  # type: ignore[union-attr]
                await self._wait_exit(5.0)
            await self._settle()
        await self.close()

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            try:
                await self.reader
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # the reader died earlier; say why once
                log.error("feed child reader failed: %s: %s", type(exc).__name__, exc)
            self.reader = None
        self.events.close(0)
        self.control.close(0)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in self._files:
            f.unlink(missing_ok=True)


