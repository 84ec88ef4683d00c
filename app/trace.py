"""Single-thread tracing: a causality trace of every decision and a report of slow batches.

The trace is JSON lines, one per decision: the decision (without its wall-clock latency), the trade that triggered
it, and the latest signal of every specialist that entered the blend (agent, trade id, direction, confidence,
features) with the weight it got. Nothing in it depends on time or scheduling, so two traced replays of the same
input write byte-identical files.
"""
from __future__ import annotations

import json
import logging
import time
from typing import IO, Any

from app.coordination.experts import agent_of
from app.events import Decision, InputEvent, Signal, Trade

log = logging.getLogger("app.trace")


class Tracer:
    def __init__(self, out: IO[str], slow_ms: float) -> None:
        self.out = out
        self.slow_ns = int(slow_ms * 1e6)
        self.last_signal: dict[tuple[str, str], Signal] = {}
        self.decisions = 0
        self.slow_batches = 0

    def on_outputs(self, batch: list[InputEvent], outputs: list[Any]) -> None:
        trades: dict[tuple[str, int], Trade] | None = None
        for ev in outputs:
            tp = type(ev)
            if tp is Signal:
                self.last_signal[(ev.ticker, ev.agent)] = ev
            elif tp is Decision:
                if trades is None:
                    trades = {(t.ticker, t.trade_id): t for t in batch if type(t) is Trade}
                self._write(ev, trades.get((ev.ticker, ev.trade_id)))

    def _write(self, d: Decision, trade: Trade | None) -> None:
        self.decisions += 1
        signals = []
        for expert in sorted(d.signals):  # "orderflow@30:fade": the specialist's signal, followed or faded
            s = self.last_signal.get((d.ticker, agent_of(expert)))
            if s is not None:
                signals.append({"agent": s.agent, "expert": expert, "trade_id": s.trade_id, "ts": s.ts,
                                "direction": s.direction, "confidence": s.confidence, "features": s.features,
                                "weight": d.weights.get(expert), "blended": d.signals[expert]})
        record = {
            "ticker": d.ticker, "trade_id": d.trade_id, "ts": d.ts, "target": d.target, "regime": d.regime,
            "reason": d.reason, "weights": d.weights,
            "trade": None if trade is None else {"trade_id": trade.trade_id, "ts": trade.ts, "price": trade.price,
                                                 "qty": trade.qty, "aggressor": trade.aggressor,
                                                 "buyer": trade.buyer, "seller": trade.seller},
            "signals": signals,
        }
        self.out.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")

    def timed(self, sink: Any) -> Any:
        """Wrap the pipeline's sink: a batch slower than the threshold is reported with what it held."""
        slow_ns = self.slow_ns

        def traced(batch: list[InputEvent]) -> None:
            t0 = time.perf_counter_ns()
            sink(batch)
            spent = time.perf_counter_ns() - t0
            if spent > slow_ns:
                self.slow_batches += 1
                log.warning("slow batch: %.2f ms processing %s", spent / 1e6, describe(batch))

        return traced


def describe(batch: list[InputEvent]) -> str:
    by_ticker: dict[str, list[int]] = {}
    other = 0
    for ev in batch:
        if type(ev) is Trade:
            ids = by_ticker.setdefault(ev.ticker, [ev.trade_id, ev.trade_id, 0])
            ids[1] = ev.trade_id
            ids[2] += 1
        else:
            other += 1
    parts = [f"{t} trades #{a}..#{b} ({n})" for t, (a, b, n) in sorted(by_ticker.items())]
    if other:
        parts.append(f"{other} book/state events")
    return f"{len(batch)} events: " + ", ".join(parts)
