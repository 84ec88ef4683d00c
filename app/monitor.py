"""The live terminal monitor: one screen, refreshed a few times per second from `App.snapshot()`.

Rendering reads plain data the loop already keeps (counters, histograms, the hierarchy's snapshot), so its cost is
a few dict copies per refresh, not per tick. `render()` returns a rich renderable and can be printed to any
console, which is how the tests check it against real counts.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from app.coordination.experts import FADE, by_agent


class RateTracker:
    """trades/s per ticker between two refreshes."""

    def __init__(self) -> None:
        self.prev: dict[str, tuple[float, int]] = {}

    def rate(self, ticker: str, count: int) -> float:
        now = time.monotonic()
        t0, n0 = self.prev.get(ticker, (now, count))
        self.prev[ticker] = (now, count)
        return (count - n0) / (now - t0) if now > t0 else 0.0


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def render(snap: dict[str, Any], rates: RateTracker | None = None) -> Group:
    feed = snap.get("feed", {})
    bridge = feed.get("bridge", {})
    dll = feed.get("dll", {})
    cont = snap.get("continuity", {})
    hier = snap.get("hierarchy", {}).get("tickers", {})
    lat_by_ticker = snap.get("decision_latency_by_ticker", {})
    rates = rates or RateTracker()

    head = Text.assemble(
        ("hmarl ", "bold"), f"run {snap.get('run_id', '-')}  feed {feed.get('feed', '-')}  ",
        ("DLL: ", "bold"), ", ".join(dll.get("conn_state", [])) or "-",
        f"  callback errors {dll.get('callback_errors', 0)}  gaps {cont.get('gaps', 0)}")

    market = Table(title="market", expand=True)
    for col in ("ticker", "last", "trades", "trades/s", "bridge depth", "cb→decision p50 µs", "p99 µs", "regime"):
        market.add_column(col, justify="right" if col not in ("ticker", "regime") else "left")
    last_price = snap.get("last_price", {})
    for ticker, n in sorted(cont.get("trades", {}).items()):
        lat = lat_by_ticker.get(ticker, {})
        market.add_row(ticker, _fmt(last_price.get(ticker)), _fmt(n), _fmt(rates.rate(ticker, n), 0),
                       f"{bridge.get('depth', 0)} (max {bridge.get('max_depth', 0)})", _fmt(lat.get("p50_us")),
                       _fmt(lat.get("p99_us")), hier.get(ticker, {}).get("regime", "-"))

    agents = Table(title="specialists (weight in the current regime: following / fading, horizons summed)",
                   expand=True)
    for col in ("ticker", "specialist", "direction", "confidence", "weight", "signals"):
        agents.add_column(col, justify="left" if col in ("ticker", "specialist") else "right")
    desk = Table(title="coordinator and paper executor", expand=True)
    for col in ("ticker", "target", "position", "avg", "realized R$", "unrealized R$", "gross ticks", "fills", "risk"):
        desk.add_column(col, justify="left" if col in ("ticker", "risk") else "right")
    for ticker, h in sorted(hier.items()):
        weights = h.get("weights", {})
        current = by_agent(weights.get("regimes", {}).get(h.get("regime"), weights.get("global", {})))
        for name, spec in h.get("specialists", {}).items():
            last = spec.get("last") or {}
            agents.add_row(ticker, name, _fmt(last.get("direction")), _fmt(last.get("confidence")),
                           f"{_fmt(current.get(name), 3)} / {_fmt(current.get(name + FADE), 3)}",
                           _fmt(spec.get("signals")))
        pos = h.get("position") or {}
        risk = h.get("risk", {})
        risk_text = "KILL" if risk.get("kill_switch") else "ok"
        if risk.get("breaches"):
            risk_text += " " + ", ".join(f"{k}:{v}" for k, v in risk["breaches"].items())
        desk.add_row(ticker, _fmt(h.get("target")), _fmt(pos.get("qty")), _fmt(pos.get("avg_price")),
                     _fmt(pos.get("realized")), _fmt(pos.get("unrealized")),
                     _fmt((pos.get("realized_ticks") or 0.0) + (pos.get("unrealized_ticks") or 0.0), 1),
                     _fmt(pos.get("fills")), risk_text)

    io = Table(title="outputs", expand=True)
    for col in ("output", "state", "backlog", "written/sent", "dropped"):
        io.add_column(col)
    vk = snap.get("valkey")
    if vk is not None:
        state = ("connected" if vk.get("connected") and not vk.get("error") else
                 f"{vk['error']} (catching up from the journal later)" if vk.get("error") else
                 "DOWN (catching up from the journal later)")
        io.add_row("valkey", state,
                   _fmt(vk.get("backlog")), _fmt(vk.get("written")), _fmt(vk.get("dropped")))
    zq = snap.get("zmq")
    if zq is not None:
        io.add_row(f"zmq {zq.get('endpoint', '')}", "publishing", "-", _fmt(zq.get("sent")), _fmt(zq.get("dropped")))
    jr = snap.get("journal")
    if jr is not None:
        io.add_row("journal", "error: " + jr["error"] if jr.get("error") else "writing",
                   _fmt(jr.get("buffered_bytes")), _fmt(jr.get("frames")), _fmt(jr.get("refused")))
    from app.io.alarms import current_alarm

    alarm = current_alarm(snap)
    if alarm:  # a storage fault is the first thing on the screen, not a cell in the outputs table
        return Group(Panel(Text("ALARM " + alarm, style="bold white on red")), Panel(head), market, agents, desk, io)
    return Group(Panel(head), market, agents, desk, io)


class Monitor:
    """Refreshes `render(app.snapshot())` on a rich Live display until stopped."""

    def __init__(self, app: Any, refresh_per_second: float = 4.0, console: Console | None = None) -> None:
        self.app = app
        self.interval = 1.0 / refresh_per_second
        self.console = console or Console(stderr=True)
        self.rates = RateTracker()
        self.renders = 0

    async def run(self, stop: asyncio.Event) -> None:
        with Live(console=self.console, auto_refresh=False, transient=False) as live:
            while not stop.is_set():
                live.update(render(self.app.snapshot(), self.rates), refresh=True)
                self.renders += 1
                try:
                    await asyncio.wait_for(stop.wait(), self.interval)
                except asyncio.TimeoutError:
                    pass
            live.update(render(self.app.snapshot(), self.rates), refresh=True)
