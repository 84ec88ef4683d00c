"""Beside a live run's journal: what the broker said and what became of our sends, in the order the loop saw them.

A live run's decisions depend on more than the tape: on when each order got its local id or was refused, when its
fills arrived, when the kill switch turned on. The input journal holds the tape only (its sequence numbers are
shared with Valkey's stream ids, so nothing else may take one), so these go to a second journal of the same format,
`<run dir>/routing/`, each wrapped in `Routed` with the input journal's last sequence number at that moment.
Replay (app.execution.journal_link) delivers each one right after that input frame: the same book at the same
points of the tape, so the same decisions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from app.config import JournalConfig
from app.events import Event, Routed

ROUTING_DIR = "routing"


class RoutingJournal:
    def __init__(self, inputs: Any, cfg: JournalConfig) -> None:
        from app.io.journal import Journal

        self.inputs = inputs  # the run's input Journal: its `seq` places every record
        self.journal = Journal(inputs.path, ROUTING_DIR, cfg)
        self.records = 0

    async def open(self) -> None:
        await self.journal.open()

    def record(self, events: list[Event]) -> None:
        if events:
            after = self.inputs.seq
            self.journal.append([Routed(after, e) for e in events])  # type: ignore[arg-type, list-item]
            self.records += len(events)

    async def close(self, timeout: float | None = None) -> None:
        await self.journal.close(timeout=timeout)


def read_routed(run_dir: str | Path) -> list[Routed]:
    """A run's routing records in order ([] for a run that routed nothing, or was not live)."""
    from app.io.journal_reader import JournalReader, run_parts

    d = Path(run_dir) / ROUTING_DIR
    if not d.is_dir() or not run_parts(d):
        return []
    decode = msgspec.msgpack.Decoder(Routed).decode
    out = []
    for _seq, payload in JournalReader(d):
        try:
            out.append(decode(payload))
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # a torn frame at the end of a killed run
    return out
