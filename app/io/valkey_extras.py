"""Learned state and run summaries in Valkey: written at once when Valkey answers, else kept and written on
reconnect (or handed over to the next start through earlier_runs when the run ends with Valkey still down).
A mixin of ValkeyWriter; the state it uses is set up there.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
from redis.exceptions import RedisError

from app.io.learned_state import state_fields as _state_fields
from app.io.learned_state import state_from_fields as _state_from_fields
from app.io.valkey_server import mask_url

log = logging.getLogger("app.io.valkey")


class ValkeyUnavailable(Exception):
    """Valkey could not be reached in time for a call that needs an answer (load_state)."""


class ExtrasMixin:
    cfg: Any
    prefix: str
    url: str
    _client: Any
    _connected: bool
    _task: Any
    _wake: asyncio.Event
    _pending_state: dict[str, dict[str, bytes]]
    _pending_summary: dict[str, dict[str, bytes]]
    _CONN_ERRORS: tuple[type[BaseException], ...]
    _new_client: Any

    def unwritten_extras(self) -> dict[str, dict[str, dict[str, bytes]]]:
        """Learned states and run summaries still not in Valkey (after close: what a later start must write)."""
        return {"state": dict(self._pending_state), "summary": dict(self._pending_summary)}

    def adopt_extras(self, extras: dict[str, dict[str, dict[str, bytes]]]) -> None:
        """Take over an earlier run's unwritten states and summaries (see earlier_runs); this run's own
        save_state/write_summary replace them."""
        for name, fields in extras.get("state", {}).items():
            self._pending_state.setdefault(name, fields)
        for run_id, fields in extras.get("summary", {}).items():
            self._pending_summary.setdefault(run_id, fields)
        self._wake.set()

    async def save_state(self, name: str, state: dict[str, Any]) -> None:
        """Replace the learned-state hash `name`. If Valkey is down it is kept and written on reconnect/close."""
        fields = _state_fields(state)
        if not self._connected and self._task is not None:
            self._pending_state[name] = fields  # known outage: do not make the caller wait for a timeout
            return
        try:
            await asyncio.wait_for(self._write_state(name, fields), timeout=self.cfg.timeout)
        except (*self._CONN_ERRORS, RedisError) as err:
            self._pending_state[name] = fields
            log.warning("valkey: could not save state %r now (%s); will retry in the background", name, err)

    async def load_state(self, name: str) -> dict[str, Any] | None:
        """The learned state saved under `name`, or None if there is none. Raises ValkeyUnavailable when Valkey
        does not answer (so the caller does not mistake an outage for a fresh start)."""
        if name in self._pending_state:
            return _state_from_fields(self._pending_state[name])
        client = self._client or self._new_client()
        try:
            raw = await asyncio.wait_for(client.hgetall(f"{self.prefix}:learned:{name}"), timeout=self.cfg.timeout)
        except (*self._CONN_ERRORS, RedisError) as err:
            raise ValkeyUnavailable(f"valkey {mask_url(self.url)}: cannot load state {name!r} ({err})") from None
        finally:
            if client is not self._client:
                await client.aclose()
        return _state_from_fields(raw) if raw else None

    async def clear_state(self, name: str) -> None:
        assert self._client is not None
        self._pending_state.pop(name, None)
        await self._client.delete(f"{self.prefix}:learned:{name}")

    async def write_summary(self, run_id: str, summary: dict[str, Any]) -> None:
        """One hash per run (values JSON), indexed by end time in <prefix>:runs."""
        fields = {k: msgspec.json.encode(v) for k, v in summary.items()}
        if not self._connected and self._task is not None:
            self._pending_summary[run_id] = fields
            return
        try:
            await asyncio.wait_for(self._write_summary(run_id, fields), timeout=self.cfg.timeout)
        except (*self._CONN_ERRORS, RedisError) as err:
            self._pending_summary[run_id] = fields
            log.warning("valkey: could not write the run summary now (%s); will retry until close", err)

    async def _flush_pending_extras(self) -> None:
        for name in list(self._pending_state):
            await self._write_state(name, self._pending_state[name])
            del self._pending_state[name]
        for run_id in list(self._pending_summary):
            await self._write_summary(run_id, self._pending_summary[run_id])
            del self._pending_summary[run_id]

    async def _write_state(self, name: str, fields: dict[str, bytes]) -> None:
        client = self._client or self._new_client()
        key = f"{self.prefix}:learned:{name}"
        pipe = client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        await pipe.execute()

    async def _write_summary(self, run_id: str, fields: dict[str, bytes]) -> None:
        client = self._client or self._new_client()
        pipe = client.pipeline(transaction=True)
        key = f"{self.prefix}:run:{run_id}"
        pipe.delete(key)
        if fields:
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.zadd(f"{self.prefix}:runs", {run_id: time.time()})
        await pipe.execute()
