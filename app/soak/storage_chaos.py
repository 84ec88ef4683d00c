"""Storage faults for `python -m app soak --chaos`, each held for a few seconds and then lifted.

- disk_full: the journal's writes fail with ENOSPC (its one write method replaced on the running instance, then
  restored): frames wait in memory, the alarm is up, and when space "returns" they must go in in order;
- valkey_refuses: the embedded server is told `maxmemory 1` (noeviction), so every write is refused exactly as a
  full server refuses it, then its limit is restored: the writer must catch up from the journal.

Cheap on purpose: no second filesystem, no root. The soak then compares journal and Valkey frame by frame
(app.io.valkey_compare), which is what proves that a fault cost nothing.
"""
from __future__ import annotations

import asyncio
import errno
from typing import Any

import redis.asyncio as redis

HOLD_S = 2.0  # how long each fault lasts


async def disk_full(app: Any, hold: float = HOLD_S) -> bool:
    journal = app.pipeline.journal if app.pipeline is not None else None
    if journal is None or not journal.is_open:
        return False

    async def no_space(data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device (soak --chaos)")

    journal._write = no_space  # the instance attribute shadows Journal._write until deleted
    try:
        await asyncio.sleep(hold)
    finally:
        del journal._write
    return True


async def valkey_refuses(app: Any, hold: float = HOLD_S) -> bool:
    pipe = app.pipeline
    server = pipe.server if pipe is not None else None
    if server is None or not getattr(server, "embedded", False) or not server.url:
        return False
    client = redis.from_url(server.url, socket_timeout=5)
    try:
        before = (await client.config_get("maxmemory")).get("maxmemory", "0")
        policy = (await client.config_get("maxmemory-policy")).get("maxmemory-policy", "noeviction")
        await client.config_set("maxmemory-policy", "noeviction")
        await client.config_set("maxmemory", "1")
        try:
            await asyncio.sleep(hold)
        finally:
            await client.config_set("maxmemory", before)
            await client.config_set("maxmemory-policy", policy)
    finally:
        await client.aclose()
    return True
