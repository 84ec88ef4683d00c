"""The App lifecycle: start, run, stop — the same in a terminal, under a tracer and inside a notebook's loop.

Start order: config -> outputs -> agents -> feed last. Stop order: feed first (so nothing new arrives), drain
the bridge, flush and close outputs. `start()` after `stop()` in the same process reuses the DLL session
(unsubscribe/resubscribe, never a second initialize).
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Callable

from app import config as config_mod
from app.feed.clock import now_ns
from app.config import Config
from app.feed.base import Feed, FeedError
from app.pipeline import Pipeline

log = logging.getLogger("app")
FEED_STOP_SHARE = 0.5  # of the stop bound: the feed stops first, the outputs need the rest to flush


def make_feed(cfg: Config, replay_path: str | None = None, speed: float | None = None) -> Feed:
    kind = cfg.feed.kind
    if cfg.feed.isolation == "process" and kind in ("simulator", "profitdll"):
        from app.feed.process.feed import ProcessFeed

        return ProcessFeed(cfg)
    if kind == "simulator":
        from app.feed.simulator.feed import SimulatorFeed

        return SimulatorFeed(cfg)
    if kind == "profitdll":
        from app.feed.profitdll.feed import ProfitDllFeed

        return ProfitDllFeed(cfg)
    if kind == "replay":
        if not replay_path:
            raise FeedError("feed.kind = \"replay\" needs a file: use `python -m app replay PATH`")
        from app.feed.replay.feed import ReplayFeed

        return ReplayFeed(replay_path, speed, cfg)
    raise FeedError(f"unknown feed.kind {kind!r}")


class App:
    def __init__(self, cfg: Config, *, replay_path: str | None = None, speed: float | None = None,
                 fresh: bool = False, tracer: Any = None, clock: Callable[[], int] = now_ns) -> None:
        self.cfg = cfg
        self.replay_path = replay_path
        self.speed = speed
        self.fresh = fresh
        self.tracer = tracer
        self.clock = clock
        self.feed: Feed | None = None
        self.pipeline: Pipeline | None = None
        self.started_at = 0.0
        self.stopped_at = 0.0
        self.running = False
        self.stop_overran: list[str] = []  # stop steps abandoned at the deadline
        self.control: Any = None  # app.control.ControlServer when HMARL_CONTROL_TOKEN is set (not for replays)
        self.live: Any = None  # app.execution.live_link.LiveLink when execution.mode = "live"

    @classmethod
    def from_config(cls, source: str | Path | Config | None = None, **overrides: Any) -> "App":
        """`App.from_config("config.toml", **{"feed.kind": "simulator"})`, or from a Config object."""
        if isinstance(source, Config):
            cfg = config_mod.with_overrides(source, overrides)
        else:
            cfg = config_mod.load(source, overrides)
        return cls(cfg)

    async def start(self) -> None:
        if self.running:
            return
        replay = self.replay_path is not None
        if self.cfg.execution.mode == "live":
            from app.run_files import new_run_id

            if replay:  # a recorded live run: the same live executors, fills from its routing journal
                from app.execution.journal_link import JournalLink

                run_id = new_run_id("replay")
                self.live = JournalLink(self.cfg, run_id)
            else:
                from app.execution import live_guard

                live_guard.check(self.cfg)  # one line naming what is missing, exit 2
                from app.execution.live_link import LiveLink

                run_id = new_run_id("run")
                self.live = LiveLink(self.cfg, run_id)
        self.pipeline = Pipeline(self.cfg, replay=replay, fresh=self.fresh, tracer=self.tracer, clock=self.clock,
                                 initial_state=initial_state_of(self.replay_path) if replay else None,
                                 **({"run_id": run_id, "live": self.live.executor} if self.live else {}))
        await self.pipeline.start()
        self.feed = make_feed(self.cfg, self.replay_path, self.speed)
        if self.live is not None:
            await self.live.open(self.pipeline)  # its journal records from the first routing event on
            self.feed.set_routing_sink(self.live.on_routing)  # type: ignore[attr-defined]
        sink = self.pipeline.on_batch
        if self.tracer is not None:
            sink = self.tracer.timed(sink)
        try:
            await self.feed.start(sink)
        except BaseException:
            try:
                await self.feed.stop()
            finally:
                await self.pipeline.stop()
            raise
        if self.live is not None:
            try:
                await self.live.start(self.feed, self.pipeline)  # reconciles before any order can go out
            except BaseException:
                await self.feed.stop()
                await self.pipeline.stop()
                raise
        self.started_at = time.monotonic()
        self.running = True
        if self.replay_path is None:
            from app.control import ControlServer

            self.control = ControlServer.from_env(Path(self.cfg.run.data_dir), self.on_control)
            if self.control is not None:
                await self.control.start()

    async def on_control(self, cmd: str) -> str:
        """A command from the control socket (app.control); the answer is one line for the operator."""
        if cmd == "ping":
            return f"running {time.monotonic() - self.started_at:.0f} s"
        assert cmd == "flatten" and self.pipeline is not None
        h = self.pipeline.hierarchy
        h.kill_switch(True)
        log.warning("kill switch on (control socket): every ticker goes flat at its next trade, orders reduce only")
        if self.live is not None:
            return "kill switch on; " + await self.live.flatten()
        held = {t: d.main.executor.committed for t, d in h.desks.items() if d.main.executor is not None}
        pos = ", ".join(f"{t} {q:+d}" for t, q in sorted(held.items()) if q) or "none"
        return f"kill switch on; positions to flatten at the next trade: {pos}"

    async def stop(self, finalize: bool = False, deadline: float | None = None) -> None:
        """Feed first, then drain and flush. `finalize=True` also shuts the DLL down for good (process exit).
        Everything ends by `deadline` (time.monotonic(); default now + run.stop_timeout): the feed gets a share of
        it, the outputs the rest; `unpersisted()` then says what could not be kept."""
        if not self.running:
            return
        self.running = False
        if deadline is None:
            deadline = time.monotonic() + self.cfg.run.stop_timeout
        if self.control is not None:
            await self.control.stop()
            self.control = None
        if self.live is not None:
            await self.live.stop()
            # an order working at the broker may fill between the read and its update reaching us: a moment for
            # those to finish (one whose send was cut by the stop has no local id and stays unknown: a real gap)
            settle = time.monotonic() + max(0.0, min(0.5, (deadline - time.monotonic()) / 8))
            while any(o.local_id for o in self.live.book.working()) and time.monotonic() < settle:
                await asyncio.sleep(0.02)
            try:  # the summary's broker column: the position as the run ends, not as the last reconciliation saw it
                await self.read_broker_positions(max(0.1, min(1.0, (deadline - time.monotonic()) / 4)))
            except Exception as exc:  # noqa: BLE001 - the stop goes on; the summary keeps the last read it had
                log.warning("stop: the broker's positions could not be read: %s: %s", type(exc).__name__, exc)
        try:
            if self.feed is not None:
                share = max(0.5, (deadline - time.monotonic()) * FEED_STOP_SHARE)
                try:  # shielded: a DLL call in progress finishes in its thread; we only stop waiting for it
                    await asyncio.wait_for(asyncio.shield(self.feed.stop(finalize=finalize)), timeout=share)
                except asyncio.TimeoutError:
                    self.stop_overran.append("stopping the feed")
                    log.error("stop: the feed did not stop within %.1f s; flushing the outputs anyway", share)
        finally:
            self.stopped_at = time.monotonic()
            if self.live is not None:  # after the feed: its last order updates are journaled too
                await self.live.close(max(0.1, (deadline - time.monotonic()) * FEED_STOP_SHARE))
            if self.pipeline is not None:
                await self.pipeline.stop(self.summary(), deadline)
                self.stop_overran += self.pipeline.stop_overran

    def unpersisted(self) -> Any:
        """app.io.unpersisted.Unpersisted: measured at stop, or now (a forced exit) while running."""
        from app.io.unpersisted import Unpersisted, measure

        p = self.pipeline
        if p is None:
            return Unpersisted()
        return p.unpersisted if p.unpersisted is not None else measure(p.journal, p.writer)

    async def wait(self, duration: float | None = None, stop: asyncio.Event | None = None) -> None:
        """Until the duration passes, `stop` is set, or the feed is done (replay end)."""
        assert self.feed is not None
        waiters = [asyncio.ensure_future(self.feed.done.wait())]
        if stop is not None:
            waiters.append(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    def snapshot(self) -> dict[str, Any]:
        """Plain data for notebooks and the monitor."""
        out: dict[str, Any] = {"running": self.running}
        if self.feed is not None:
            out["feed"] = self.feed.stats()
        if self.pipeline is not None:
            out.update(self.pipeline.snapshot())
        if self.live is not None:
            live = out["live"] = self.live.snapshot()
            desks = self.pipeline.hierarchy.desks if self.pipeline is not None else {}
            executors = sorted(self.live.executors.items())
            live["ours"] = {t: ex.qty for t, ex in executors}
            # this run's fills from the broker's order updates (the executor's own count carries earlier runs' over;
            # fills caught up by a reconciliation are counted in its line)
            live["fills"] = {t: desks[t].counts["fills"] for t, _ in executors if t in desks}
        return out

    async def read_broker_positions(self, timeout: float = 2.0) -> dict[str, int]:
        """The broker's position per ticker, read now into `live.broker_positions`. Between reconciliations nothing
        else reads it: the monitor's check calls this every few seconds, and the stop once for the summary."""
        live = self.live
        router = getattr(getattr(live, "feed", None), "router", None)  # a replay's JournalLink has none
        if router is None or not router.connected:
            return {}
        tickers = sorted(set(live.feed.tickers) | set(live.executors))

        async def read() -> dict[str, int]:
            return {t: (await router.position(live.account, t, live.exchange)).qty for t in tickers}

        got = await asyncio.wait_for(read(), timeout)
        live.broker_positions.update(got)
        return got

    def summary(self) -> dict[str, Any]:
        """The one-line JSON summary of `run --json`."""
        snap = self.snapshot()
        elapsed = (self.stopped_at or time.monotonic()) - self.started_at if self.started_at else 0.0
        feed = snap.get("feed", {})
        bridge = feed.get("bridge", {})
        cont = snap.get("continuity", {})
        out: dict[str, Any] = {
            "feed": feed.get("feed"),
            "run_id": snap.get("run_id"),
            "seconds": round(elapsed, 3),
            "events": cont.get("events", {}),
            "trades": cont.get("trades", {}),
            "gaps": cont.get("gaps", 0),
            "decisions": snap.get("decisions", 0),
            "decision_digest": snap.get("decision_digest"),
            "callback_to_decision_us": {k: v for k, v in snap.get("decision_latency", {}).items() if k != "count"},
            "bridge_max_depth": bridge.get("max_depth", 0),
            "bridge_mean_batch": bridge.get("mean_batch", 0.0),
            "callback_to_loop_us": {k: v for k, v in bridge.get("latency", {}).items() if k != "count"},
        }
        if "dll" in feed:
            out["dll_callback_errors"] = feed["dll"].get("callback_errors", 0)
            # which callbacks the DLL called, and how long each kind kept the DLL's thread (native: timed in C;
            # ctypes: inside Python, after the GIL was taken); with the stand-in also as the DLL side timed them all
            out["dll_callbacks"] = {"path": feed["dll"].get("bridge_path"),
                                    "dwell_us": {name: {k: v for k, v in h.items() if k != "count"}
                                                 for name, h in feed["dll"].get("dwell", {}).items()}}
            if "callback_dwell" in feed.get("simulator", {}):
                side = feed["simulator"]["callback_dwell"]
                out["dll_callbacks"]["dll_side_dwell_us"] = {k: v for k, v in side.items() if k != "count"}
        if "simulator" in feed:
            out["violations"] = feed["simulator"].get("violations", 0)
        for key in ("process", "zmq", "valkey", "journal", "live"):
            part = feed.get(key) if key == "process" else snap.get(key)
            if part:
                out[key] = part
        from app.io.alarms import run_alarms

        alarms = run_alarms(snap)
        if alarms:
            out["storage_alarms"] = alarms
        if self.stop_overran:
            out["stop_overran"] = list(self.stop_overran)
        # only once measured at the end of the stop: before it, frames still in memory are simply not written yet
        lost = self.pipeline.unpersisted if self.pipeline is not None else None
        if lost is not None and (lost.lost_inputs or lost.derived):
            import msgspec

            out["unpersisted"] = msgspec.to_builtins(lost)
        return out


def run_file(replay_path: str | None, name: str) -> Path | None:
    """A file a recorded run keeps beside its journal (the path may be the run directory or one part in it)."""
    if not replay_path:
        return None
    p = Path(replay_path)
    for d in (p, p.parent):
        if d.is_dir() and (d / name).is_file():
            return d / name
    return None


def initial_state_of(replay_path: str | None) -> dict[str, Any] | None:
    """The learned state a recorded run started from (None: start fresh)."""
    import msgspec

    from app.run_files import INITIAL_STATE_FILE

    f = run_file(replay_path, INITIAL_STATE_FILE)
    return (msgspec.msgpack.decode(f.read_bytes()) or None) if f else None


def recorded_config(replay_path: str | None, overrides: dict[str, Any]) -> Config | None:
    """The configuration a recorded run used, with `overrides` applied (None when it was not kept)."""
    import msgspec

    from app.run_files import CONFIG_FILE

    f = run_file(replay_path, CONFIG_FILE)
    if f is None:
        return None
    return config_mod.with_overrides(config_mod.from_dict(msgspec.json.decode(f.read_bytes()), str(f)), overrides)

