"""Earlier runs that ended before Valkey had everything, written in from their journals in the background.

Why in the background and bounded: this used to run before the new run started feeding, for up to 600 s per run,
and one damaged journal blocked every later start. Now the new run feeds at once; only its own Valkey input
writes wait (`ValkeyWriter.hold_inputs`, its backlog spilling to its journal) while the earlier runs go in, because
stream ids only grow and the earlier runs' ids are older. The wait has a budget: a run not done within it is
skipped with one line, the new run's inputs go in, and the next start resumes the skipped run from its progress
hash. Whatever of it is then older than the streams' last ids goes to its late streams (`<prefix>:late:<run_id>:`,
see valkey_batch), so nothing journaled stays out of Valkey unreported. A stop cancels all of this at once.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import msgspec

from app.config import ValkeyConfig
from app.io.journal_format import JournalError
from app.io.journal_reader import journal_files, read_header

log = logging.getLogger("app.io.valkey")

VALKEY_COMPLETE_FILE = "valkey.complete"  # every readable input event of the run is in Valkey
UNWRITTEN_FILE = "valkey.unwritten.msgpack"  # learned state and summary the run could not write (Valkey down)
BUDGET_S = 120.0  # seconds the new run's inputs wait for earlier runs at most


def pending_runs(journal_root: Path, current: Path) -> list[Path]:
    """Run directories under `journal_root` with a journal but no completion marker, oldest first."""
    if not journal_root.is_dir():
        return []
    return [d for d in sorted(p for p in journal_root.iterdir() if p.is_dir())
            if d != current and not (d / VALKEY_COMPLETE_FILE).exists() and any(d.glob("*.hmj"))]


async def catch_up_runs(url: str, cfg: ValkeyConfig, runs: list[Path], budget: float = BUDGET_S) -> dict[str, str]:
    """Write each run's journal into Valkey within `budget` seconds in all; returns run id -> outcome
    ("complete", "skipped: <why>"). Cancellation stops at once (nothing is waited for)."""
    from app.io.valkey_writer import ValkeyWriter

    deadline = time.monotonic() + budget
    outcome: dict[str, str] = {}
    for run_dir in runs:
        name = run_dir.name
        left = deadline - time.monotonic()
        if left <= 0:
            outcome[name] = "skipped: out of time"
            log.warning("valkey: earlier run %s not written into Valkey this time (the %.0f s budget is spent); the "
                        "next start resumes it", name, budget)
            continue
        try:
            read_header(journal_files(run_dir)[0])
        except (JournalError, OSError) as exc:
            outcome[name] = f"skipped: {exc}"
            log.warning("valkey: earlier run %s skipped: its journal cannot be read (%s)", name, exc)
            continue
        log.info("valkey: writing earlier run %s from its journal (in the background, up to %.0f s)", name, left)
        writer = ValkeyWriter(url, cfg, run_dir, run_id=name)
        try:
            await writer.start()
            last = await writer.catch_up_journal(timeout=left)
        except asyncio.CancelledError:
            await writer.abort()
            raise
        except (TimeoutError, JournalError, OSError, ValueError) as exc:
            outcome[name] = f"skipped: {exc}"
            await writer.abort()
            log.warning("valkey: earlier run %s skipped (%s); the next start tries again; if its journal is damaged "
                        "run `python -m app repair %s`", name, exc, name)
            continue
        st = writer.stats()
        await writer.close()
        (run_dir / VALKEY_COMPLETE_FILE).write_text(str(last))
        outcome[name] = "complete"
        lost = st["lost"] + st["undecodable"]
        extra = f"; {lost} unreadable journal frames could not be written" if lost else ""
        extra += f"; {st['late']} older events went to its late streams" if st["late"] else ""
        log.info("valkey: earlier run %s is complete in Valkey (%d input events)%s", name, last, extra)
    return outcome


def save_unwritten(run_dir: Path, writer: Any) -> bool:
    """After the writer closed: keep what it could not write beside the journal, for the next start."""
    extras = writer.unwritten_extras()
    if not extras["state"] and not extras["summary"]:
        return False
    (run_dir / UNWRITTEN_FILE).write_bytes(msgspec.msgpack.encode(extras))
    log.warning("valkey: the final learned state and run summary are not in Valkey yet; kept in %s for the next "
                "start", run_dir / UNWRITTEN_FILE)
    return True


def adopt_unwritten(journal_root: Path, current: Path, writer: Any) -> list[str]:
    """Hand the writer what earlier runs could not write. A learned state is taken only from the newest earlier
    run (an older one is stale: a later run saved its own); summaries always. Returns the runs adopted from."""
    if not journal_root.is_dir():
        return []
    runs = sorted(p for p in journal_root.iterdir() if p.is_dir() and p != current)
    adopted = []
    for run_dir in runs:
        path = run_dir / UNWRITTEN_FILE
        if not path.exists():
            continue
        try:
            extras = msgspec.msgpack.decode(path.read_bytes())
        except (msgspec.DecodeError, OSError) as exc:
            log.warning("valkey: %s is unreadable (%s); ignored", path, exc)
            path.unlink(missing_ok=True)
            continue
        if run_dir != runs[-1]:
            extras["state"] = {}
        writer.adopt_extras(extras)
        path.unlink()
        adopted.append(run_dir.name)
        log.info("valkey: writing what run %s could not (learned state: %s, summary: %s)", run_dir.name,
                 "yes" if extras["state"] else "no", "yes" if extras["summary"] else "no")
    return adopted
