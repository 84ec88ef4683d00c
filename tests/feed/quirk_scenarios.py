"""Stand-in scenarios for the real DLL's known behaviour (issue 10 item 0), each in a process of its own.

Run as `python -m tests.feed.quirk_scenarios NAME [JSON-ARGS]`; prints one JSON line with what it measured.
"""
from __future__ import annotations

import asyncio
import atexit
import json
import sys
import time
from typing import Any

from app import config as config_mod
from app.continuity import Continuity
from app.events import Book, State, Trade
from app.feed.base import FeedError
from app.feed.simulator.feed import SimulatorFeed


def _cfg(**overrides: Any) -> config_mod.Config:
    base = {"feed.book": "depth", "simulator.pace": False, "simulator.bursts": False}
    base.update(overrides)
    return config_mod.load(None, base)


class Sink:
    """Keeps what a test needs to judge: continuity, states, and anything a masked argument would corrupt."""

    def __init__(self) -> None:
        self.continuity = Continuity()
        self.states: list[list[int]] = []
        self.bad_sides = 0
        self.edits = 0
        self.unknown_aggressor = 0
        self.trades_by_time: list[float] = []

    def __call__(self, batch: list) -> None:
        self.continuity.observe(batch)
        for ev in batch:
            if isinstance(ev, State):
                self.states.append([ev.conn_type, ev.result])
            elif isinstance(ev, Book):
                self.bad_sides += ev.side not in ("bid", "ask")
            elif isinstance(ev, Trade):
                self.edits += bool(ev.edit)
                self.unknown_aggressor += ev.aggressor == "unknown"


async def _wait(cond: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return bool(cond())


async def depth_shapes(total: int = 20_000, flush_add: str = "ends_bracket", trade_api: str = "v2",
                       book: str = "depth", garbage: int = 1) -> dict:
    cfg = _cfg(**{"simulator.max_trades": total, "feed.depth_flush_add": flush_add, "feed.trade_api": trade_api,
                  "feed.book": book})
    feed = SimulatorFeed(cfg)
    configure = feed.prepare

    async def prepare(session: Any) -> None:
        await configure(session)
        control = feed.control()
        assert control is not None
        for name, value in (("garbage", garbage), ("theoric_every", 40)):
            await session.owner.call(control.set, name, value)

    feed.prepare = prepare  # type: ignore[method-assign]
    sink = Sink()
    await feed.start(sink)
    control = feed.control()
    assert control is not None
    await _wait(lambda: sink.continuity.counts["trade"] >= total, 120)
    await asyncio.sleep(0.3)  # the last event's depth notifications
    stats = feed.stats()
    await feed.stop(finalize=True)
    return {"sim": control.stats(), "dll": stats["dll"], "continuity": sink.continuity.stats(),
            "states": sink.states, "bad_sides": sink.bad_sides, "edits": sink.edits,
            "unknown_aggressor": sink.unknown_aggressor}


async def reconnect(zone: str = "UTC") -> dict:
    cfg = _cfg(**{"simulator.pace": True, "simulator.rate": 400.0, "simulator.clock_zone": zone})
    feed = SimulatorFeed(cfg)
    configure = feed.prepare

    async def prepare(session: Any) -> None:
        await configure(session)
        control = feed.control()
        assert control is not None
        for name, value in (("drop_after", 300), ("drop_ms", 300), ("drop_subs", 1), ("perf_warn_after", 100)):
            await session.owner.call(control.set, name, value)

    feed.prepare = prepare  # type: ignore[method-assign]
    sink = Sink()
    await feed.start(sink)
    control = feed.control()
    assert control is not None
    await _wait(lambda: control.stat("reconnects") >= 1, 20)
    at_reconnect = sink.continuity.counts["trade"]
    await _wait(lambda: sink.continuity.counts["trade"] > at_reconnect + 200, 20)
    stats = feed.stats()
    after = sink.continuity.counts["trade"] - at_reconnect
    await feed.stop(finalize=True)
    return {"sim": control.stats(), "dll": stats["dll"], "continuity": sink.continuity.stats(),
            "states": sink.states, "trades_after_reconnect": after}


async def login_stale() -> dict:
    feed = SimulatorFeed(_cfg())
    configure = feed.prepare

    async def prepare(session: Any) -> None:
        await configure(session)
        await session.owner.call(feed.control().set, "login_result", 200)  # type: ignore[union-attr]

    feed.prepare = prepare  # type: ignore[method-assign]
    try:
        await feed.start(Sink())
    except FeedError as exc:
        return {"error": str(exc)}
    return {"error": ""}


async def finalize_then_initialize() -> dict:
    """Finalize (the stand-in calls back from inside DLLFinalize), then start again: refused in Python, so the
    stand-in's default re-initialize (abort, like the real DLL) is never reached."""
    cfg = _cfg(**{"simulator.pace": True, "simulator.rate": 300.0})
    feed = SimulatorFeed(cfg)
    sink = Sink()
    await feed.start(sink)
    await asyncio.sleep(0.3)
    await feed.stop(finalize=True)
    control = feed.control()
    assert control is not None and feed.session is not None
    dll = feed.stats()["dll"]
    error = ""
    try:
        await SimulatorFeed(cfg).start(Sink())
    except FeedError as exc:
        error = str(exc)
    return {"sim": control.stats(), "dll": dll, "states": sink.states, "reinit_error": error,
            "conn_state": {str(k): v for k, v in feed.session.conn_state.items()}}


async def exit_without_stop() -> dict:
    """Return while trades flow: the at-exit hook closes the gate and finalizes. What it saw is printed from an
    at-exit hook registered before the session's, so it runs after it."""
    from app.feed.profitdll import callbacks

    cfg = _cfg(**{"simulator.pace": True, "simulator.rate": 2000.0})
    feed = SimulatorFeed(cfg)
    sink = Sink()
    box: dict[str, Any] = {}

    def report() -> None:
        assert feed.session is not None and "control" in box
        print(json.dumps({"gate_open": callbacks.GATE[0], "sim": box["control"].stats(),
                          "finalized": feed.session.finalized, "market_state": feed.session.conn_state.get(2),
                          "callback_errors": feed.session.stats()["callback_errors"],
                          "path": feed.session.bridge_path}), flush=True)

    atexit.register(report)
    await feed.start(sink)
    box["control"] = feed.control()
    await _wait(lambda: sink.continuity.counts["trade"] > 200, 10)
    return {"started": True}


async def exit_with_stuck_finalize(hang_ms: float = 20_000, timeout: float = 0.5) -> dict:
    """Return while trades flow, with a DLLFinalize that does not return: the at-exit hook must end the process
    (exit code 3) rather than let the interpreter finish under a DLL thread that still calls back."""
    from app.feed.profitdll import session as session_mod

    feed = SimulatorFeed(_cfg(**{"simulator.pace": True, "simulator.rate": 2000.0}))
    sink = Sink()
    await feed.start(sink)
    control = feed.control()
    assert control is not None and feed.session is not None
    await feed.session.owner.call(control.set, "finalize_hang_ms", hang_ms)
    session_mod.AT_EXIT_FINALIZE_TIMEOUT = timeout
    await _wait(lambda: sink.continuity.counts["trade"] > 200, 10)
    return {"started": True}


SCENARIOS = {"exit_with_stuck_finalize": exit_with_stuck_finalize, "depth_shapes": depth_shapes, "reconnect": reconnect, "login_stale": login_stale,
             "finalize_then_initialize": finalize_then_initialize, "exit_without_stop": exit_without_stop}


def main() -> None:
    name = sys.argv[1]
    kwargs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    print(json.dumps(asyncio.run(SCENARIOS[name](**kwargs)), default=str), flush=True)


if __name__ == "__main__":
    main()
