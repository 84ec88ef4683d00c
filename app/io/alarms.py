"""Storage faults as alarms: one phrase for the status line and the monitor, numbers for the `metrics` topic, and
what the run went through for its summary.

Why: on a full disk the journal held its frames in memory and Valkey refused writes, both retrying quietly; the
operator saw trades flowing and no sign that nothing was being kept. Everything here reads the stats the journal
(app.io.journal) and the Valkey writer (app.io.valkey_writer) already keep in the pipeline's snapshot: `error` is
the failure right now (None once writes go in again), `last_error` the latest of the run.

Bounds, and what happens past them (never silent: counted and in the alarm):
- journal: `journal.max_buffer_mb` of frames waits in memory for the disk; past it new frames are refused
  (`refused`), their sequence numbers consumed so readers see the hole;
- Valkey: `valkey.backlog` entries wait in memory; past it the oldest input events fall back to the journal
  (`spilled`: written from there when Valkey is back) and new derived events are dropped (`dropped`).
"""
from __future__ import annotations

from typing import Any


def _mb(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MB"


def journal_alarm(js: dict[str, Any] | None) -> str | None:
    if not js or not (js.get("error") or js.get("refused")):
        return None
    held = f"{_mb(js.get('buffered_bytes', 0))} of {_mb(js.get('max_buffer_bytes', 0))} held in memory"
    out = f"journal {js.get('path', '')}: "
    out += f"{js['error']} for {js.get('error_for_s', 0):.0f} s, {held}" if js.get("error") else held
    if js.get("refused"):
        out += f", {js['refused']:,} frames refused past the bound"
    return out


def valkey_alarm(vk: dict[str, Any] | None) -> str | None:
    if not vk or not vk.get("error"):
        return None
    out = (f"valkey {vk.get('url', '')}: {vk['error']} for {vk.get('error_for_s', 0):.0f} s, "
           f"backlog {vk.get('backlog', 0):,} of {vk.get('backlog_bound', 0):,}")
    if vk.get("spilled"):
        out += f", {vk['spilled']:,} input events left to the journal"
    if vk.get("dropped"):
        out += f", {vk['dropped']:,} derived events dropped"
    return out


def current_alarm(snap: dict[str, Any]) -> str | None:
    """The storage faults of an App/Pipeline snapshot right now, one phrase (None: all is being written)."""
    found = [a for a in (journal_alarm(snap.get("journal")), valkey_alarm(snap.get("valkey"))) if a]
    return "; ".join(found) or None


def metric_values(snap: dict[str, Any]) -> dict[str, float]:
    """The `storage` metric published on the `metrics` topic: 1/0 flags and the backlogs against their bounds."""
    js, vk = snap.get("journal") or {}, snap.get("valkey") or {}
    out: dict[str, float] = {}
    if js:
        out.update(journal_error=float(bool(js.get("error"))),
                   journal_buffered_bytes=float(js.get("buffered_bytes", 0)),
                   journal_max_buffer_bytes=float(js.get("max_buffer_bytes", 0)),
                   journal_refused=float(js.get("refused", 0)), journal_write_errors=float(js.get("write_errors", 0)))
    if vk:
        out.update(valkey_error=float(bool(vk.get("error"))), valkey_backlog=float(vk.get("backlog", 0)),
                   valkey_backlog_bound=float(vk.get("backlog_bound", 0)), valkey_spilled=float(vk.get("spilled", 0)),
                   valkey_dropped=float(vk.get("dropped", 0)), valkey_errors=float(vk.get("errors", 0)))
    out["alarm"] = float(current_alarm(snap) is not None)
    return out


def run_alarms(snap: dict[str, Any]) -> dict[str, Any]:
    """For the summary: each store that failed at some point of the run, with its latest error and counters."""
    out: dict[str, Any] = {}
    js, vk = snap.get("journal") or {}, snap.get("valkey") or {}
    if js.get("last_error") or js.get("refused"):
        out["journal"] = {"last_error": js.get("last_error"), "error_now": js.get("error"),
                          "write_errors": js.get("write_errors", 0), "refused": js.get("refused", 0),
                          "max_buffered_bytes": js.get("max_buffered_bytes", 0),
                          "max_buffer_bytes": js.get("max_buffer_bytes", 0)}
    if vk.get("last_error"):
        out["valkey"] = {"last_error": vk.get("last_error"), "error_now": vk.get("error"),
                         "errors": vk.get("errors", 0), "spilled": vk.get("spilled", 0),
                         "dropped": vk.get("dropped", 0), "backlog_bound": vk.get("backlog_bound", 0)}
    return out
