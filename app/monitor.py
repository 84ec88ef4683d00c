"""The live terminal monitor: one screen, refreshed a few times per second from `App.snapshot()`.

Rendering reads plain data the loop already keeps (counters, histograms, the hierarchy's snapshot), so its cost is
a few dict copies per refresh, not per tick. `render()` returns a rich renderable and can be printed to any
console, which is how the tests check it against real counts.

When orders are routed live and stdin is a terminal, `F` then `y` turns the kill switch on (the same handler as
`python -m app flatten`, without the token: whoever holds this terminal started the run).
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from app.coordination.experts import FADE, by_agent
from app.monitor_live import PositionCheck, live_panel

log = logging.getLogger("app.monitor")

CONFIRM_S = 5.0  # after F: how long a `y` still confirms the flatten
FLATTEN_WAIT_S = 10.0  # at stop: how long a confirmed flatten may still run before the app stops under it
PROMPT = f"press y within {CONFIRM_S:g} s to FLATTEN (cancel every order, close every position); any other key cancels"


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


class FlattenKey:
    """`F`, then `y` within CONFIRM_S: the kill switch through `flatten` (the app's control handler). Any other key,
    or the time passing, disarms, so one stray key never flattens; a confirmation while a flatten runs starts none."""

    def __init__(self, flatten: Callable[[], Awaitable[str]], clock: Callable[[], float] = time.monotonic) -> None:
        self.flatten = flatten
        self.clock = clock
        self.armed_at: float | None = None
        self.task: asyncio.Task[None] | None = None
        self.result = ""  # the last flatten's answer, for the header

    def armed(self) -> bool:
        return self.armed_at is not None and self.clock() - self.armed_at <= CONFIRM_S

    def on_key(self, ch: str) -> None:
        if ch in ("y", "Y") and self.armed():
            self.armed_at = None
            if self.task is None or self.task.done():
                self.task = asyncio.get_running_loop().create_task(self._flatten(), name="monitor-flatten")
            return
        self.armed_at = self.clock() if ch in ("f", "F") else None

    async def _flatten(self) -> None:
        log.warning("monitor: F y pressed: kill switch on, flattening")
        self.result = "flattening..."
        try:
            detail = await self.flatten()
        except Exception as exc:  # noqa: BLE001 - the operator must see that it failed, and why
            detail = f"FAILED: {type(exc).__name__}: {exc}"
        self.result = f"flatten at {time.strftime('%H:%M:%S')}: {detail}"

    def line(self) -> str:
        return PROMPT if self.armed() else self.result


class KeyReader:
    """Single keys from the terminal without blocking the loop: cbreak mode (no echo, no Enter needed, Ctrl-C still
    a signal) while it runs. `stop()` restores the terminal and may be called any number of times, so every exit
    path (the monitor's end, an exception, a forced exit) can call it."""

    def __init__(self, on_key: Callable[[str], None], stream: Any = None) -> None:
        self.on_key = on_key
        self.stream = stream if stream is not None else sys.stdin
        self._fd: int | None = None  # watched by the loop
        self._saved: Any = None  # the terminal's mode before cbreak, restored on stop
        self._term_fd = -1
        self._task: asyncio.Task[None] | None = None

    def start(self) -> bool:
        """False when there is no terminal to read (a pipe, /dev/null, a service): no key handling then."""
        try:
            if not self.stream.isatty():
                return False
        except (AttributeError, ValueError):  # closed or replaced stdin
            return False
        loop = asyncio.get_running_loop()
        if sys.platform == "win32":
            self._task = loop.create_task(self._poll_console(), name="monitor-keys")
            return True
        import termios
        import tty

        fd = self._term_fd = self.stream.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        try:
            loop.add_reader(fd, self._readable)
        except (NotImplementedError, RuntimeError):
            self.stop()
            return False
        self._fd = fd
        return True

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 64)
        except OSError:
            data = b""
        if not data:  # the terminal went away: stop watching it, or the loop would spin on a readable EOF
            self.stop()
            return
        for ch in data.decode(errors="ignore"):
            self.on_key(ch)

    async def _poll_console(self) -> None:
        import msvcrt  # type: ignore[import-not-found]

        while True:
            while msvcrt.kbhit():  # type: ignore[attr-defined]
                self.on_key(msvcrt.getwch())  # type: ignore[attr-defined]
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self._fd is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._fd)
            except RuntimeError:  # no loop running any more (a forced exit): the terminal still gets restored
                pass
        if self._saved is not None:
            import termios

            try:
                termios.tcsetattr(self._term_fd, termios.TCSADRAIN, self._saved)
            except termios.error:  # the terminal is gone: nothing left to restore
                pass
        self._fd = self._saved = None
        if self._task is not None:
            self._task.cancel()
            self._task = None


def callback_line(feed: dict[str, Any]) -> str:
    """Which callbacks the DLL calls and how long its threads stayed in them: the DLL side's timing when the
    stand-in gives it (it includes a ctypes callback's GIL wait), else the path's own (p99 / max µs)."""
    dll = feed.get("dll", {})
    path = dll.get("bridge_path", "-")
    side = feed.get("simulator", {}).get("callback_dwell")
    if side and side.get("count"):
        return f"{path}, dwell p99 {side['p99_us']:g} / max {side['max_us']:g} µs (DLL side)"
    hists = [h for h in dll.get("dwell", {}).values() if h.get("count")]
    if not hists:
        return path
    return (f"{path}, dwell p99 {max(h['p99_us'] for h in hists):g} / max {max(h['max_us'] for h in hists):g} µs"
            + ("" if path == "native" else " (inside Python)"))


def render(snap: dict[str, Any], rates: RateTracker | None = None, keys: str | None = None,
           check: PositionCheck | None = None) -> Group:
    """`keys`: None when no key is read (no hint); else the flatten key's current line ("" when idle)."""
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
        f"  callbacks {callback_line(feed)}  callback errors {dll.get('callback_errors', 0)}"
        f"  gaps {cont.get('gaps', 0)}")
    if keys is not None and "live" in snap:
        head.append("   keys: F then y = FLATTEN", "bold")
        if keys:
            head.append("\n" + keys, "bold yellow" if keys == PROMPT else "bold")

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

    parts: list[Any] = [Panel(head), market, agents, desk]
    if "live" in snap:
        parts.append(live_panel(snap["live"], check))
    parts.append(io)
    alarm = current_alarm(snap)
    if alarm:  # a storage fault is the first thing on the screen, not a cell in the outputs table
        parts.insert(0, Panel(Text("ALARM " + alarm, style="bold white on red")))
    return Group(*parts)


class Monitor:
    """Refreshes `render(app.snapshot())` on a rich Live display until stopped; with `keys` (stdin is a terminal)
    and live routing on, reads the flatten key."""

    def __init__(self, app: Any, refresh_per_second: float = 4.0, console: Console | None = None,
                 keys: bool = False) -> None:
        self.app = app
        self.interval = 1.0 / refresh_per_second
        self.console = console or Console(stderr=True)
        self.rates = RateTracker()
        self.renders = 0
        self.keys = keys
        self.flatten_key: FlattenKey | None = None
        self.reader: KeyReader | None = None

    def restore_terminal(self) -> None:
        """For exits that skip `run`'s cleanup (a forced exit ends the process from a signal handler)."""
        if self.reader is not None:
            self.reader.stop()

    async def run(self, stop: asyncio.Event) -> None:
        live_on = getattr(self.app, "live", None) is not None
        check = PositionCheck() if live_on else None
        check_task = None
        if check is not None:
            check_task = asyncio.get_running_loop().create_task(check.run(self.app, stop), name="monitor-positions")
        if self.keys and live_on:
            self.flatten_key = FlattenKey(lambda: self.app.on_control("flatten"))
            self.reader = KeyReader(self.flatten_key.on_key)
            if not self.reader.start():
                self.flatten_key = self.reader = None

        def screen() -> Group:
            keys = self.flatten_key.line() if self.flatten_key is not None else None
            return render(self.app.snapshot(), self.rates, keys, check)

        try:
            with Live(console=self.console, auto_refresh=False, transient=False) as live:
                while not stop.is_set():
                    live.update(screen(), refresh=True)
                    self.renders += 1
                    try:
                        await asyncio.wait_for(stop.wait(), self.interval)
                    except asyncio.TimeoutError:
                        pass
                live.update(screen(), refresh=True)
        finally:
            self.restore_terminal()
            if check_task is not None:
                check_task.cancel()
                await asyncio.gather(check_task, return_exceptions=True)
            task = self.flatten_key.task if self.flatten_key is not None else None
            if task is not None and not task.done():  # confirmed before the stop: it finishes before the app stops
                await asyncio.wait({task}, timeout=FLATTEN_WAIT_S)
