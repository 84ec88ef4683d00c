"""The running app's control socket: `python -m app flatten` (or the monitor's key) reaches the kill switch here.

Why a socket and a token: the operator who must stop trading NOW is often in another terminal, or a script; a
signal would also stop the feed and lose the position view. The socket listens on loopback only, on an ephemeral
port written to `<data_dir>/control.json` (the endpoint, never the token), and every request must carry the token
from the environment variable HMARL_CONTROL_TOKEN of both processes; without that variable the socket is not
opened at all. One request at a time (REQ/REP), answered within a bound, compared in constant time.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

log = logging.getLogger("app.control")

ENV_TOKEN = "HMARL_CONTROL_TOKEN"
FILE = "control.json"
COMMANDS = ("ping", "flatten")

Handler = Callable[[str], Awaitable[str]]


class ControlServer:
    def __init__(self, data_dir: Path, token: str, handler: Handler) -> None:
        self.path = data_dir / FILE
        self._token = token.encode()
        self.handler = handler
        self.ctx = zmq.asyncio.Context.instance()
        self.sock: Any = None
        self.endpoint = ""
        self.refused = 0
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, data_dir: Path, handler: Handler) -> "ControlServer | None":
        token = os.environ.get(ENV_TOKEN, "")
        return cls(data_dir, token, handler) if token else None

    async def start(self) -> None:
        self.sock = self.ctx.socket(zmq.REP)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:0")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"endpoint": self.endpoint, "pid": os.getpid()}))
        tmp.replace(self.path)
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="control")
        log.info("control socket on %s (token from %s)", self.endpoint, ENV_TOKEN)

    async def _serve(self) -> None:
        while True:
            raw = await self.sock.recv()
            try:
                req = json.loads(raw)
                ok_token = hmac.compare_digest(str(req.get("token", "")).encode(), self._token)
                cmd = str(req.get("cmd", ""))
            except (ValueError, AttributeError):
                ok_token, cmd = False, ""
            if not ok_token:
                self.refused += 1
                reply = {"ok": False, "detail": f"refused: wrong or missing token (set {ENV_TOKEN})"}
            elif cmd not in COMMANDS:
                reply = {"ok": False, "detail": f"unknown command {cmd!r}; known: {', '.join(COMMANDS)}"}
            else:
                try:
                    reply = {"ok": True, "detail": await self.handler(cmd)}
                except Exception as exc:  # the reply must go out whatever the handler did
                    reply = {"ok": False, "detail": f"{cmd} failed: {type(exc).__name__}: {exc}"}
            await self.sock.send(json.dumps(reply).encode())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self.sock is not None:
            self.sock.close(0)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


async def request(data_dir: Path, cmd: str, token: str, timeout: float = 5.0) -> dict[str, Any]:
    """Send one command to the app running on `data_dir`; raises LookupError when none is listening."""
    try:
        info = json.loads((data_dir / FILE).read_text())
    except (FileNotFoundError, ValueError):
        raise LookupError(f"no running app with a control socket on {data_dir} (start `run` with {ENV_TOKEN} set)") \
            from None
    ctx = zmq.asyncio.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(info["endpoint"])
    try:
        await sock.send(json.dumps({"cmd": cmd, "token": token}).encode())
        if not await sock.poll(int(timeout * 1000)):
            raise LookupError(f"the app at {info['endpoint']} did not answer within {timeout:g} s")
        return json.loads(await sock.recv())
    finally:
        sock.close(0)
