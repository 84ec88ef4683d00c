"""What a run could not persist, measured from its journal and Valkey writer and said in one line.

Why: a stop on a full disk with Valkey refusing writes used to print "stopping" and hang. The stop is now bounded
(run.stop_timeout); whatever is still only in memory when it ends is lost, and the operator must learn how much,
which journal sequence numbers, and where it would have gone. The same measure serves a forced exit (second
signal) and the watchdog that ends a stop stuck in something it cannot cancel, so it reads only counters and
never awaits.
"""
from __future__ import annotations

import os
from typing import Any

import msgspec


class Unpersisted(msgspec.Struct):
    events: int = 0  # input events in neither the journal's file nor Valkey
    first_seq: int = 0  # their journal sequence range
    last_seq: int = 0
    refused: int = 0  # input events dropped earlier: the journal's in-memory bound was passed (or no journal)
    derived: int = 0  # signals, decisions, fills... that did not reach Valkey (best effort, never journaled)
    journal: str | None = None  # where the input events would have gone
    journal_error: str | None = None
    valkey: str | None = None
    valkey_error: str | None = None

    @property
    def lost_inputs(self) -> bool:
        """Input events are gone for good (what makes the exit code 4)."""
        return self.events > 0 or self.refused > 0


def measure(journal: Any, writer: Any) -> Unpersisted:
    """From the run's Journal and ValkeyWriter (either may be None), at any moment, without awaiting."""
    out = Unpersisted()
    vk = writer.stats() if writer is not None else None
    if vk is not None:
        out.valkey, out.valkey_error, out.derived = vk["url"], vk.get("error"), vk.get("derived_pending", 0)
    if journal is not None:
        js = journal.stats()
        out.journal, out.journal_error = os.path.abspath(js["path"]), js.get("error") or js.get("last_error")
        # the journal leads: Valkey is only ever given what the journal's file already holds, so what the journal
        # still has in memory is in neither
        out.events, out.first_seq, out.last_seq = journal.unwritten()
        out.refused = js.get("refused", 0)
    elif vk is not None:
        pending = vk["enqueued_seq"] - vk["acked_seq"]
        if pending > 0:
            out.events, out.first_seq, out.last_seq = pending, vk["acked_seq"] + 1, vk["enqueued_seq"]
        out.refused = vk.get("lost", 0)
    return out


def describe(u: Unpersisted) -> str | None:
    """One line for stderr and the summary's `error`, or None when nothing was lost."""
    if not u.lost_inputs and not u.derived:
        return None
    journal = f"the journal {u.journal}" + (f" ({u.journal_error})" if u.journal_error else "") if u.journal else None
    valkey = f"Valkey {u.valkey}" + (f" ({u.valkey_error})" if u.valkey_error else "") if u.valkey else None
    inputs_dest = " and ".join(d for d in (journal, valkey) if d) or "no output (journal and Valkey disabled)"
    parts = []
    if u.events:
        parts.append(f"{u.events:,} input events (journal seq {u.first_seq:,}-{u.last_seq:,}) meant for {inputs_dest}")
    if u.refused:
        parts.append(f"{u.refused:,} input events dropped earlier when the in-memory bound was passed "
                     f"(journal.max_buffer_mb, or valkey.backlog without a journal)")
    if u.derived:
        parts.append(f"{u.derived:,} derived events (signals, decisions, fills) meant for {valkey}")
    return "not persisted: " + "; ".join(parts)
