"""Frame-by-frame comparison of a run's journal with what Valkey holds: the reference every storage test and
`soak --chaos` use."""
from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as redis

from app.config import ValkeyConfig
from app.io.valkey_server import ValkeyServer
from app.io.valkey_writer import entries_from_journal


async def missing_frames(url: str, run_dir: Path, prefix: str = "hmarl") -> tuple[int, list[str]]:
    """(frames compared, "<key> <id>" of every journal frame that is not in Valkey with the same bytes, under its
    stream or the run's late stream)."""
    expected = list(entries_from_journal(run_dir, prefix))
    client = redis.from_url(url)
    missing: list[str] = []
    try:
        for i in range(0, len(expected), 500):
            chunk = expected[i:i + 500]
            pipe = client.pipeline(transaction=False)
            for key, entry_id, _payload in chunk:
                pipe.xrange(key, entry_id, entry_id)
                pipe.xrange(f"{prefix}:late:{run_dir.name}:{key[len(prefix) + 1:]}", entry_id, entry_id)
            rows = await pipe.execute()
            for k, (key, entry_id, payload) in enumerate(chunk):
                found = rows[2 * k] or rows[2 * k + 1]
                if not found or found[0][1].get(b"d") != payload:
                    missing.append(f"{key} {entry_id}")
    finally:
        await client.aclose()
    return len(expected), missing


def missing_in_embedded(data_dir: Path, run_dirs: list[Path]) -> dict[str, tuple[int, list[str]]]:
    """Start the embedded server on `data_dir` (after the runs ended) and compare each run's journal with it."""
    async def main() -> dict[str, tuple[int, list[str]]]:
        server = ValkeyServer(ValkeyConfig(), data_dir)
        url = await server.start()
        try:
            return {d.name: await missing_frames(url, d) for d in run_dirs}
        finally:
            await server.stop()

    return asyncio.run(main())
