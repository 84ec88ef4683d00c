"""The monitor's live-routing panel, and the broker-position check behind its position table.

Why a check of its own: LiveLink reads the broker's position only when it reconciles or flattens, so between those
the broker column would be minutes old while ours moves with every fill. The check reads it every CHECK_S and sets
it against our position at that same moment. A fill reaches the broker's position before its order update reaches
the loop, so one read may differ for a few milliseconds; a difference counts as a mismatch (red) only when two reads
in a row see it, and one read that differs shows as "checking".
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

CHECK_S = 2.0
WORKING_ROWS = 8


class PositionCheck:
    """The broker's position against ours per ticker, as of the last reads (`rows`), while the monitor runs."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}  # ticker -> broker, ours, differs (reads in a row), at
        self.error = ""

    def record(self, broker: dict[str, int], ours: dict[str, int], at: float) -> None:
        for t in sorted(set(broker) | set(ours)):
            b, o = broker.get(t, 0), ours.get(t, 0)
            before = self.rows.get(t, {}).get("differs", 0)
            self.rows[t] = {"broker": b, "ours": o, "differs": before + 1 if b != o else 0, "at": at}

    async def run(self, app: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                broker = await app.read_broker_positions()
                if broker:
                    self.record(broker, {t: ex.qty for t, ex in app.live.executors.items()}, time.monotonic())
                self.error = ""
            except Exception as exc:  # noqa: BLE001 - the screen says the check failed; trading is not its business
                self.error = f"{type(exc).__name__}: {exc}"
            try:
                await asyncio.wait_for(stop.wait(), CHECK_S)
            except asyncio.TimeoutError:
                pass


def signed(q: int) -> str:
    return f"{q:+d}" if q else "0"


def _positions(live: dict[str, Any], check: PositionCheck | None) -> Table:
    table = Table(title="broker position vs ours", expand=True)
    for col in ("ticker", "broker", "ours", "fills", "check"):
        table.add_column(col, justify="left" if col in ("ticker", "check") else "right")
    fills = live.get("fills", {})
    if check is not None and check.rows:
        now = time.monotonic()
        rows = {t: (r["broker"], r["ours"], r["differs"], f"{now - r['at']:.0f} s ago") for t, r in check.rows.items()}
    else:  # no check running (a snapshot printed, a replay): the last read LiveLink made against ours now
        broker, ours = live.get("broker_positions", {}), live.get("ours", {})
        rows = {t: (broker.get(t), ours.get(t, 0), 2 if t in broker and broker[t] != ours.get(t, 0) else 0,
                    "last read" if t in broker else "not read")
                for t in sorted(set(broker) | set(ours))}
    for t, (b, o, differs, when) in sorted(rows.items()):
        style = "bold white on red" if differs >= 2 else "yellow" if differs == 1 else ""
        verdict = "MISMATCH" if differs >= 2 else "differs once, checking again" if differs == 1 else "agrees"
        if b is None:
            verdict = "-"
        table.add_row(t, Text("-" if b is None else signed(b), style), Text(signed(o), style), str(fills.get(t, 0)),
                      Text(f"{verdict} ({when})", style))
    if check is not None and check.error:
        table.caption = Text(f"position check failed: {check.error}", "bold red")
    return table


def live_panel(live: dict[str, Any], check: PositionCheck | None = None) -> Panel:
    if live.get("replayed_from_journal"):
        head = Text(f"replayed from the routing journal: {live.get('records', 0):,} records, "
                    f"{live.get('mismatches', 0)} mismatches {live.get('first_mismatch', '')}")
    else:
        ok = live.get("reconciled")
        head = Text.assemble(
            "reconciled: ", ("yes" if ok else "NO, trading stopped", "bold green" if ok else "bold white on red"),
            f"  reconciliations {live.get('reconciliations', 0)}, the last: {live.get('last_reconciliation', '')}\n",
            f"orders sent {live.get('sent', 0):,}  refused {live.get('refused', 0):,}  answer lost "
            f"{live.get('unknown', 0)}  updates not ours {live.get('unknown_updates', 0)}")
        if live.get("last_refusal"):
            head.append(f"\nlast refusal: {live['last_refusal']}", "yellow")
    working = live.get("working", [])
    orders = Table(title=f"working orders ({len(working)})", expand=True)
    for col in ("client id", "local id", "ticker", "side", "qty", "traded", "state"):
        orders.add_column(col, justify="right" if col in ("local id", "qty", "traded") else "left")
    for w in working[:WORKING_ROWS]:
        orders.add_row(w["client_id"], str(w["local_id"] or "-"), w["ticker"], w["side"], str(w["qty"]),
                       str(w["traded"]), w["state"])
    if len(working) > WORKING_ROWS:
        orders.caption = f"+{len(working) - WORKING_ROWS} more"
    title = f"live routing: account {live.get('account', '-')} (broker {live.get('broker', '-')})"
    return Panel(Group(head, orders, _positions(live, check)), title=title)
