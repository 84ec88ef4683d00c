"""Brings the embedded Valkey back when it dies during a run.

Why: after a kill -9 (or the OOM killer) of the embedded server the run went on, but nothing of it reached Valkey
again: not the derived events, not the final learned state, not the run summary. The supervisor notices the exit,
restarts the server on the same port and data directory (its append-only file restores what it had synced), with
a bounded back-off, and the writer reconnects by itself and catches up the inputs from the journal. After
`MAX_RESTARTS` in one run it gives up with one line (something is wrong with the machine or the data directory).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("app.io.valkey")

POLL_S = 0.25
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # wait before restart n (the last one repeats)
MAX_RESTARTS = 10


class ValkeySupervisor:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.restarts = 0
        self.failures = 0
        self.gave_up = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None and getattr(self.server, "embedded", False) and not self.server.attached:
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="valkey-supervisor")

    async def stop(self) -> None:
        """Before the server is stopped on purpose: a planned exit is not a crash."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def stats(self) -> dict[str, Any]:
        return {"restarts": self.restarts, "restart_failures": self.failures, "gave_up": self.gave_up}

    async def _watch(self) -> None:
        from app.io.valkey_server import ValkeyServerError

        attempt = 0
        while True:
            await asyncio.sleep(POLL_S)
            proc = getattr(self.server, "_proc", None)
            code = proc.poll() if proc is not None else None
            if proc is not None and code is None:
                continue
            if attempt >= MAX_RESTARTS:
                self.gave_up = True
                log.error("valkey: the embedded server died %d times in this run; not restarting it again (see %s); "
                          "the journal keeps every input event for the next start", attempt, self.server.log_path)
                return
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            log.error("valkey: the embedded server exited (code %s); restarting it in %.1f s", code, wait)
            await asyncio.sleep(wait)
            attempt += 1
            try:
                await self.server.start()
            except (ValkeyServerError, OSError) as exc:
                self.failures += 1
                log.error("valkey: restart %d failed (%s)", attempt, exc)
                continue
            self.restarts += 1
            log.info("valkey: embedded server restarted (restart %d, pid %s); the writer reconnects and catches up",
                     self.restarts, self.server.pid)
