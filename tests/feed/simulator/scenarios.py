"""Planted-signal scenarios of the native stand-in, each in a process of its own (the DLL initializes once per
process).

Run as `python -m tests.feed.simulator.scenarios NAME [JSON-ARGS]`; prints one JSON line with what it measured.
"""
from __future__ import annotations

import asyncio
import ctypes
import hashlib
import json
import struct
import sys
import time
from typing import Any

from app import config as config_mod
from app.continuity import Continuity
from app.coordination.experts import agent_of
from app.events import Decision, Signal, Trade
from app.feed.simulator.feed import SimulatorFeed
from app.hierarchy import Hierarchy

NL_OK = 0
EXPERTS = ("orderflow", "liquidity", "tape", "footprint")  # SIM_RegimeAt's informative 0..3


def _cfg(scenario: str, seed: int, trades: int, book: str, **more: Any) -> config_mod.Config:
    overrides = {"feed.tickers": ["WDO"], "feed.book": book, "simulator.pace": False, "simulator.bursts": False,
                 "simulator.scenario": scenario, "simulator.seed": seed, "simulator.max_trades": trades,
                 "simulator.start": "2024-03-04 10:00:00"}
    overrides.update({f"simulator.{k}": v for k, v in more.items()})
    return config_mod.load(None, overrides)


class Sink:
    """Continuity, a digest of the first `digest_trades` trades, and optionally the whole hierarchy."""

    def __init__(self, digest_trades: int, hierarchy: Hierarchy | None) -> None:
        self.continuity = Continuity()
        self.digest = hashlib.sha256()
        self.digest_trades = digest_trades
        self.digested = 0
        self.first_id = 0
        self.h = hierarchy
        self.decisions: list[tuple[int, dict[str, float]]] = []
        self.signals = {e: 0 for e in EXPERTS}

    def __call__(self, batch: list) -> None:
        self.continuity.observe(batch)
        pack = struct.pack
        for ev in batch:
            if type(ev) is Trade:
                if not self.first_id:
                    self.first_id = ev.trade_id
                if self.digested < self.digest_trades:
                    self.digested += 1
                    self.digest.update(pack("<qdq", ev.trade_id, ev.price, ev.qty) + ev.aggressor.encode())
        if self.h is not None:
            for o in self.h.on_batch(batch):
                if type(o) is Decision:
                    self.decisions.append((o.trade_id, _by_agent(o.weights)))
                elif type(o) is Signal:
                    self.signals[o.agent] += 1


def _by_agent(weights: dict[str, float]) -> dict[str, float]:
    """Expert weights ('orderflow@60:fade', ...) summed per specialist: the regime names one specialist."""
    out: dict[str, float] = {}
    for name, w in weights.items():
        agent = agent_of(name)
        out[agent] = out.get(agent, 0.0) + w
    return out


def _regime_at(handle: ctypes.CDLL) -> Any:
    fn = handle.SIM_RegimeAt
    fn.restype = ctypes.c_int32
    fn.argtypes = [ctypes.c_wchar_p, ctypes.c_int64, ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_double)]
    inf, edge = ctypes.c_int32(), ctypes.c_double()

    def regime_at(ticker: str, trade_id: int) -> tuple[int, str | None, float] | None:
        rc = fn(ticker, trade_id, ctypes.byref(inf), ctypes.byref(edge))
        if rc != NL_OK:
            return None
        return rc, (EXPERTS[inf.value] if inf.value >= 0 else None), edge.value

    return regime_at


async def run(scenario: str = "planted", seed: int = 7, trades: int = 60_000, book: str = "depth",
              hierarchy: bool = True, digest_trades: int = 20_000, **more: Any) -> dict:
    cfg = _cfg(scenario, seed, trades, book, **more)
    feed = SimulatorFeed(cfg)
    sink = Sink(digest_trades, Hierarchy(cfg, clock=lambda: 0) if hierarchy else None)
    t0 = time.perf_counter()
    await feed.start(sink)
    control = feed.control()
    assert control is not None and feed.session is not None
    deadline = time.monotonic() + 120
    while sink.continuity.counts["trade"] < trades and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - t0
    stats = feed.stats()
    await feed.stop(finalize=True)
    sim = control.stats()
    (ticker,) = feed.tickers
    regime_at = _regime_at(feed.session.lib.handle)
    # the regime table, walked trade by trade: (first trade, last trade, informative, edge) per regime
    regimes: list[list] = []
    first, last = sink.first_id, sink.continuity.last_id.get(ticker, 0)
    for tid in range(first, last + 1) if scenario != "none" else ():
        r = regime_at(ticker, tid)
        assert r is not None, tid
        if not regimes or (regimes[-1][2], regimes[-1][3]) != r[1:]:
            regimes.append([tid, tid, r[1], r[2]])
        else:
            regimes[-1][1] = tid
    probes = {"before_first": regime_at(ticker, first - 1) is None, "unknown_ticker": regime_at("PETR4", first) is None,
              "far_future": regime_at(ticker, last + 10_000_000) is None}
    out: dict[str, Any] = {"ticker": ticker, "seconds": elapsed, "received": sink.continuity.counts["trade"],
                           "continuity": sink.continuity.stats(), "sim": sim, "dll": stats["dll"],
                           "digest": sink.digest.hexdigest(), "digested": sink.digested, "regimes": regimes,
                           "probes": probes}
    if sink.h is not None:
        per_regime = []
        for start, end, informative, edge in regimes:
            ws = [w for tid, w in sink.decisions if start <= tid <= end]
            late = ws[len(ws) // 2:]
            per_regime.append({
                "start": start, "end": end, "informative": informative, "edge": edge, "decisions": len(ws),
                "late_share_over_half": {e: sum(w[e] > 0.5 for w in late) / max(1, len(late)) for e in EXPERTS},
            })
        decisions = [w for _, w in sink.decisions]
        late = decisions[len(decisions) // 2:]
        out["per_regime"] = per_regime
        out["decisions"] = len(decisions)
        out["late_share_over_half"] = {e: sum(w[e] > 0.5 for w in late) / max(1, len(late)) for e in EXPERTS}
        out["final_weights"] = decisions[-1] if decisions else {}
        out["counts"] = {t: dict(d.counts) for t, d in sink.h.desks.items()}
        out["signals"] = sink.signals
    return out


SCENARIOS = {"run": run}


def main() -> None:
    name = sys.argv[1]
    kwargs = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    result = asyncio.run(SCENARIOS[name](**kwargs))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
