"""What happens on the loop to every batch the feed delivers.

    drain -> continuity check -> journal -> hierarchy (signals, decision, orders, fills, rewards)
          -> ZMQ publisher and Valkey writer (inputs and everything the hierarchy produced)

`on_batch` is synchronous and never awaits: the journal, the publisher and the Valkey writer only buffer here and
do their I/O from their own tasks. Start order: journal, Valkey (restore learned state), ZMQ, hierarchy; stop:
save state, flush journal and Valkey, close ZMQ, stop the embedded server.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

import msgspec

from app.feed.clock import now_ns
from app.config import Config
from app.continuity import Continuity
from app.events import Decision, Event, InputEvent, Metric, OrderUpdate
from app.hierarchy import Hierarchy, LiveFactory
from app.io.codec import encode_batch
from app.metrics import LatencyHistogram
from app.run_files import (CONFIG_FILE, INITIAL_STATE_FILE, STATE_NAME, SUMMARY_FILE, VALKEY_COMPLETE_FILE,
                           decision_fingerprint, masked_config, new_run_id)

log = logging.getLogger("app.pipeline")

_RESERVE_S = 1.0  # of the stop bound, kept for closing files and stopping the embedded server


class LearnedStateError(Exception):
    """The saved learned state cannot be restored; the message says how to start anyway."""


class Pipeline:
    def __init__(self, cfg: Config, *, run_id: str | None = None, replay: bool = False, fresh: bool = False,
                 initial_state: dict[str, Any] | None = None, clock: Callable[[], int] = now_ns,
                 tracer: Any = None, live: LiveFactory | None = None) -> None:
        self.cfg = cfg
        self.replay = replay
        self.fresh = fresh
        self.run_id = run_id or new_run_id("replay" if replay else "run")
        self.continuity = Continuity()
        self.hierarchy = Hierarchy(cfg, clock, live=live)
        self.initial_state = initial_state
        self.tracer = tracer
        self.decision_latency = LatencyHistogram()  # DLL callback -> decision made
        self.latency_by_ticker: dict[str, LatencyHistogram] = {}
        self.decisions = 0
        self.recent_decisions: deque[Decision] = deque(maxlen=50)
        self.digest = hashlib.blake2b(digest_size=16)
        self.journal: Any = None
        self.publisher: Any = None
        self.server: Any = None
        self.writer: Any = None
        self.outputs = 0
        self.restored = False
        self._reported_invalid: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._earlier: asyncio.Task[None] | None = None  # earlier runs going into Valkey in the background
        self.earlier_runs_budget: float | None = None  # seconds (None: app.io.earlier_runs.BUDGET_S)
        self.earlier_runs: dict[str, str] = {}  # run id -> outcome of their catch-up
        self.supervisor: Any = None
        self._last_metric = (time.monotonic(), 0)
        self.lock: Any = None
        self.unpersisted: Any = None  # app.io.unpersisted.Unpersisted, measured at stop
        self.stop_overran: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.cfg
        data_dir = Path(cfg.run.data_dir)
        journal_here = cfg.journal.enabled and not self.replay and not cfg.journal.dir
        if journal_here or (cfg.valkey.enabled and cfg.valkey.url == "embedded"):
            from app.io.datadir_lock import DataDirLock

            self.lock = DataDirLock(data_dir)
            self.lock.acquire()  # before anything is written there: a second instance is refused, not merged
        try:
            await self._start(cfg, data_dir)
        except BaseException:
            if self._earlier is not None:  # a start that fails leaves nothing running behind it
                self._earlier.cancel()
                await asyncio.gather(self._earlier, return_exceptions=True)
                self._earlier = None
            if self.lock is not None:
                self.lock.release()
            raise

    async def _start(self, cfg: Config, data_dir: Path) -> None:
        if cfg.journal.enabled and not self.replay:
            from app.io.journal import Journal

            self.journal = Journal(Path(cfg.journal.dir) if cfg.journal.dir else data_dir / "journal", self.run_id,
                                   cfg.journal)
            await self.journal.open()
        if cfg.valkey.enabled:
            await self._start_valkey(data_dir)
            if self.journal is not None:
                self._start_earlier_runs()
        state = self.initial_state
        if state is None and self.writer is not None and not self.fresh and not self.replay:
            from app.io.valkey_writer import ValkeyUnavailable

            try:
                state = await self.writer.load_state(STATE_NAME)
            except ValkeyUnavailable as exc:
                # an outage must not pass for a fresh start: the learned weights would silently be lost
                raise ValkeyUnavailable(f"{exc}; start Valkey, or pass --fresh to start without learned state") \
                    from None
        if state:
            try:
                self.hierarchy.restore(state)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                raise LearnedStateError(
                    f"the learned state saved by an earlier run is damaged ({type(exc).__name__}: {exc}); "
                    "pass --fresh to start without it (the damaged copy stays in Valkey until overwritten)") from None
            self.restored = True
            log.info("restored learned state (%d tickers)", len(state.get("tickers", {})))
        if self.journal is not None:
            # replay of this journal must start from the same learned state and settings to reproduce its decisions
            (self.journal.path / INITIAL_STATE_FILE).write_bytes(msgspec.msgpack.encode(state or {}))
            (self.journal.path / CONFIG_FILE).write_bytes(msgspec.json.encode(masked_config(cfg)))
        if cfg.zmq.enabled:
            from app.io.zmq_publisher import Publisher

            self.publisher = Publisher(cfg.zmq)
            await self.publisher.start()
        if not self.replay:
            loop = asyncio.get_running_loop()
            self._tasks.append(loop.create_task(self._periodic(), name="pipeline-periodic"))


    async def _start_valkey(self, data_dir: Path) -> None:
        from app.io.valkey_server import ValkeyServer
        from app.io.valkey_supervisor import ValkeySupervisor
        from app.io.valkey_writer import ValkeyWriter

        self.server = ValkeyServer(self.cfg.valkey, data_dir)
        url = await self.server.start()
        self.supervisor = ValkeySupervisor(self.server)
        self.supervisor.start()  # an embedded server that dies during the run is brought back
        self.writer = ValkeyWriter(url, self.cfg.valkey, self.journal, run_id=self.run_id)
        await self.writer.start()
        if self.journal is not None:
            from app.io.earlier_runs import adopt_unwritten

            # before load_state: a run that ended with Valkey down left its final learned state beside its journal
            adopt_unwritten(self.journal.path.parent, self.journal.path, self.writer)

    async def stop(self, summary: dict[str, Any] | None = None, deadline: float | None = None) -> None:
        """Save state, flush and close the outputs, every step within `deadline` (time.monotonic(); default now +
        run.stop_timeout) whatever the disk or Valkey do. What could not be persisted by then is measured in
        `self.unpersisted` (app.io.unpersisted); steps that ran out of time are named in `self.stop_overran`."""
        if deadline is None:
            deadline = time.monotonic() + self.cfg.run.stop_timeout

        def left(reserve: float = 0.0) -> float:
            return max(0.0, deadline - time.monotonic() - reserve)

        if self._earlier is not None:  # at once: the next start resumes it
            self._earlier.cancel()
            await asyncio.gather(self._earlier, return_exceptions=True)
            self._earlier = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        summary = summary or self.summary()
        writer, journal = self.writer, self.journal
        try:
            if writer is not None:
                if not self.replay:
                    await self._within("saving the learned state", writer.save_state(STATE_NAME,
                                                                                     self.hierarchy.state()), left())
                await self._within("writing the run summary to Valkey", writer.write_summary(self.run_id, summary),
                                   left())
            if journal is not None:
                # a full disk may free up meanwhile: keep trying until a reserve for the rest of the stop is left
                await self._within("flushing the journal", journal.flush(), left(_RESERVE_S))
            if writer is not None:
                await writer.close(timeout=left(_RESERVE_S))
                if journal is not None:
                    from app.io.earlier_runs import save_unwritten

                    self._try("keeping the unwritten learned state", save_unwritten, journal.path, writer)
            if journal is not None:
                await journal.close(timeout=left(_RESERVE_S / 2))
                self._try("writing the run summary file", self._write_run_summary, summary)
                vk = writer.stats() if writer is not None else None
                if vk is not None and vk.get("acked_seq") == journal.stats()["seq"]:
                    self._try("writing the completion marker",
                              (journal.path / VALKEY_COMPLETE_FILE).write_text, str(vk["acked_seq"]))
        finally:
            from app.io.unpersisted import measure

            self.unpersisted = measure(journal, writer)
            try:
                if self.supervisor is not None:
                    await self.supervisor.stop()
                if self.publisher is not None:
                    await self.publisher.close()
                if self.server is not None:
                    await self.server.stop(timeout=max(0.5, left()))
            finally:
                if self.lock is not None:
                    self.lock.release()

    async def _within(self, what: str, step: Any, seconds: float) -> None:
        """Await `step` for at most `seconds`; past that it is abandoned and named in stop_overran."""
        try:
            await asyncio.wait_for(step, timeout=seconds)
        except asyncio.TimeoutError:
            self.stop_overran.append(what)
            log.error("stop: %s did not finish within the stop bound (run.stop_timeout); going on without it", what)

    def _try(self, what: str, fn: Callable[..., Any], *args: Any) -> None:
        """A file written at stop: a full or read-only disk is reported, and the stop goes on."""
        try:
            fn(*args)
        except OSError as exc:
            log.error("stop: %s failed (%s)", what, exc)

    # -- the hot path ----------------------------------------------------------------------------------------------
    def on_batch(self, batch: list[InputEvent]) -> None:
        continuity = self.continuity
        invalid_before = len(continuity.invalid_tickers)
        continuity.observe(batch)
        if len(continuity.invalid_tickers) != invalid_before:
            self._report_invalid(invalid_before)
        # decide first: the outputs only buffer, so writing them after the decisions loses nothing and keeps
        # their cost out of the callback -> decision latency
        outputs = self.hierarchy.on_batch(batch)
        if outputs:
            self.outputs += len(outputs)
            record, recent, update = self.decision_latency.record, self.recent_decisions, self.digest.update
            by_ticker = self.latency_by_ticker
            for ev in outputs:
                if type(ev) is Decision:
                    self.decisions += 1
                    record(ev.latency_ns)
                    h = by_ticker.get(ev.ticker)
                    if h is None:
                        h = by_ticker[ev.ticker] = LatencyHistogram()
                    h.record(ev.latency_ns)
                    recent.append(ev)
                    update(decision_fingerprint(ev))
            if self.tracer is not None:
                self.tracer.on_outputs(batch, outputs)
        journal, publisher, writer = self.journal, self.publisher, self.writer
        if journal is None and publisher is None and writer is None:
            return
        # each event is encoded once; the journal, the publisher and the Valkey writer share the bytes
        payloads = encode_batch(batch)
        if journal is not None:
            journal.append(batch, payloads)
        if publisher is None and writer is None:
            return
        out_payloads = encode_batch(outputs) if outputs else None
        if publisher is not None:
            publisher.publish(batch, payloads)
            if outputs:
                publisher.publish(outputs, out_payloads)
        if writer is not None:
            writer.enqueue(batch, payloads)
            if outputs:
                writer.enqueue(outputs, out_payloads)

    def on_routing(self, events: list[Event]) -> None:
        """The DLL's routing events (order updates, trading results, accounts, broker positions): the hierarchy books
        the fills they report; they and what they produced go to ZMQ and Valkey as derived events."""
        outputs: list[Event] = list(events)
        on_update = self.hierarchy.on_order_update
        for ev in events:
            if type(ev) is OrderUpdate:
                outputs.extend(on_update(ev))  # type: ignore[arg-type]
        self.outputs += len(outputs) - len(events)
        payloads = encode_batch(outputs)
        if self.publisher is not None:
            self.publisher.publish(outputs, payloads)
        if self.writer is not None:
            self.writer.enqueue(outputs, payloads)

    def _start_earlier_runs(self) -> None:
        """Runs that ended before Valkey had everything (it was down, or a flood outran it at stop) go in from their
        journals in the background; this run's inputs wait for them (ids only grow), never its feed."""
        from app.io.earlier_runs import pending_runs

        assert self.journal is not None and self.writer is not None
        runs = pending_runs(self.journal.path.parent, self.journal.path)
        if runs:
            self.writer.hold_inputs = True
            self._earlier = asyncio.get_running_loop().create_task(self._catch_up_earlier_runs(runs),
                                                                   name="valkey-earlier-runs")

    async def _catch_up_earlier_runs(self, runs: list[Path]) -> None:
        from app.io.earlier_runs import BUDGET_S, catch_up_runs

        assert self.server is not None and self.writer is not None
        try:
            budget = BUDGET_S if self.earlier_runs_budget is None else self.earlier_runs_budget
            self.earlier_runs = await catch_up_runs(self.server.url, self.cfg.valkey, runs, budget)
        except Exception as exc:  # noqa: BLE001 - never take the run down for an earlier one
            log.error("valkey: catching up earlier runs failed (%s: %s); the next start tries again",
                      type(exc).__name__, exc)
        finally:
            self.writer.release_inputs()

    def _write_run_summary(self, summary: dict[str, Any]) -> None:
        """The live measurements a replay cannot reproduce (latency), kept beside the journal for the report."""
        hist = self.decision_latency
        record = {**summary, "decision_latency_buckets": [
            [lower, count] for lower, count in hist.nonzero_buckets()]}
        (self.journal.path / SUMMARY_FILE).write_text(msgspec.json.encode(record).decode())

    def _report_invalid(self, start: int) -> None:
        for ev in self.continuity.invalid_tickers[start:]:
            if ev.ticker in self._reported_invalid:  # SubscribeTicker and SubscribePriceDepth both report it
                continue
            self._reported_invalid.add(ev.ticker)
            log.error("ticker %s (exchange %s) was rejected by the DLL's invalid-ticker callback; "
                      "fix it in feed.tickers", ev.ticker, ev.exchange)

    # -- periodic: metrics on the wire, learned state saved ------------------------------------------------------
    async def _periodic(self) -> None:
        interval = self.cfg.run.status_interval
        ticks = 0
        while True:
            await asyncio.sleep(interval)
            ticks += 1
            self.publish_metrics()
            if self.writer is not None and ticks % max(1, int(5 / interval)) == 0:
                await self.writer.save_state(STATE_NAME, self.hierarchy.state())

    def publish_metrics(self, extra: dict[str, float] | None = None) -> None:
        now = time.monotonic()
        t0, n0 = self._last_metric
        n = self.continuity.counts["trade"]
        self._last_metric = (now, n)
        lat = self.decision_latency
        values = {"trades": float(n), "trades_per_s": (n - n0) / (now - t0) if now > t0 else 0.0,
                  "decisions": float(self.decisions), "gaps": float(self.continuity.gaps),
                  "decision_p50_us": lat.percentile(50) / 1e3, "decision_p99_us": lat.percentile(99) / 1e3}
        if extra:
            values.update(extra)
        if self.publisher is not None:
            from app.io.alarms import metric_values

            ts = time.time_ns()
            storage = metric_values({"journal": self.journal.stats() if self.journal is not None else None,
                                     "valkey": self.writer.stats() if self.writer is not None else None})
            self.publisher.publish([Metric(name="pipeline", ts=ts, values=values),
                                    Metric(name="storage", ts=ts, values=storage)])

    # -- inspection ------------------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "decisions": self.decisions, "decision_digest": self.digest.hexdigest(),
                "callback_to_decision_us": {k: v for k, v in self.decision_latency.summary_us().items()
                                            if k != "count"},
                **self.continuity.stats(), **({"valkey": v} if (v := self._storage_summary()) else {})}

    def _storage_summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.supervisor is not None:
            out["restarts"] = self.supervisor.restarts
        if self.earlier_runs:
            out["earlier_runs"] = dict(self.earlier_runs)
        return out

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "continuity": self.continuity.stats(),
            "last_price": dict(self.continuity.last_price),
            "hierarchy": self.hierarchy.snapshot(),
            "decisions": self.decisions,
            "decision_digest": self.digest.hexdigest(),
            "decision_latency": self.decision_latency.summary_us(),
            "decision_latency_by_ticker": {t: h.summary_us() for t, h in self.latency_by_ticker.items()},
            "recent_decisions": [msgspec.to_builtins(d) for d in self.recent_decisions],
            "restored_state": self.restored,
        }
        if self.journal is not None:
            out["journal"] = self.journal.stats()
        if self.publisher is not None:
            out["zmq"] = self.publisher.stats()
        if self.writer is not None:
            out["valkey"] = {**self.writer.stats(), **self._storage_summary()}
        return out
