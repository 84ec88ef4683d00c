"""The Valkey writer's hot call: one server-side script, by EVALSHA, on a connection held for it.

redis-py's `Redis.execute_command` wraps every call in a pool checkout and release, a retry policy, observability
hooks and a response-callback lookup, and a registered script adds its own wrapper. Warm, that is noise; on a loop
that sleeps between the writer's batches (20 a second at the default `batch_interval`) it all runs on cold caches:
measured on the reference machine with calls 10 ms apart, 504 µs of loop CPU per call through the registered
script against 307 µs for the same command packed by the connection and sent on a connection kept for it - about
0.4 % of a core at low rates. The reply is read by redis-py's own parser, so errors arrive as they did.

The connection is taken from the client's pool on first use and held; any failure of the call (timeout, reset,
cancellation mid-reply) disconnects it and hands it back to the pool, so the next call starts on a clean one. A
server that lost its script cache (restarted without persistence) answers NOSCRIPT: the script is loaded again and
the call sent once more. Any other error reply (OOM, MISCONF) is raised as redis-py raises it, the connection kept.
"""
from __future__ import annotations

import hashlib
from typing import Any

from redis.exceptions import NoScriptError, ResponseError


class HeldScript:
    def __init__(self, client: Any, lua: str) -> None:
        self._client = client
        self._lua = lua
        self.sha = hashlib.sha1(lua.encode()).hexdigest()
        self._conn: Any = None

    async def __call__(self, keys: list[Any], args: list[Any]) -> Any:
        conn = self._conn
        if conn is None:
            conn = self._conn = await self._client.connection_pool.get_connection()
        try:
            try:
                return await self._call(conn, keys, args)
            except NoScriptError:
                self.sha = await self._client.script_load(self._lua)
                return await self._call(conn, keys, args)
        except BaseException as exc:
            if not isinstance(exc, ResponseError):  # an error reply leaves the connection in step; nothing else does
                await self.drop()
            raise

    async def _call(self, conn: Any, keys: list[Any], args: list[Any]) -> Any:
        await conn.send_packed_command(conn.pack_command("EVALSHA", self.sha, len(keys), *keys, *args),
                                       check_health=False)
        return await conn.read_response()

    async def drop(self) -> None:
        """Disconnect the held connection and give it back to the pool (before the client closes, or after a
        failure)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.disconnect(nowait=True)
        finally:
            await self._client.connection_pool.release(conn)
