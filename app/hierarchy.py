"""The trading hierarchy as one pure, synchronous engine: specialists -> regime -> coordinator -> risk -> paper
executor, with rewards flowing back to the learner.

`Hierarchy.on_event` takes one input event and returns the events it caused, in causal order: the Signals of this
trade, the Rewards that became due with it (and so updated the learner), then the Decision, RiskBreaches, Order,
Fill and Position. No I/O, no awaits, nothing random; the only value that depends on the wall clock is
Decision.latency_ns (clock() - trade.received_ns), and replay/eval pass a clock that makes it deterministic.

Each ticker has its own Desk: its market state, specialists, regime classifier, learner, coordinator and lanes. A
lane is one way of turning the same signals into positions: the main lane uses the learner's weights and emits
events; eval adds silent shadow lanes with fixed weights (equal weight, one specialist, the regime oracle) so that
every strategy sees exactly the same signals, fills and costs.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

from app.agents.base import session_day, session_span
from app.config import Config
from app.coordination.policies import Policy
from app.feed.clock import now_ns
from app.events import (Book, Decision, Event, InputEvent, InvalidTicker, Order, OrderUpdate, Reward, RiskBreach,
                        Signal, Trade)
from app.desk import Desk, Lane, LiveFactory
from app.execution.contracts import spec_for


class Hierarchy:
    def __init__(self, cfg: Config, clock: Callable[[], int] = now_ns,
                 shadows: dict[str, Policy] | None = None, live: LiveFactory | None = None) -> None:
        self.cfg = cfg
        self.live = live  # builds the coordinator's executor per ticker when orders are routed live
        self.clock = clock
        self.shadows = dict(shadows or {})
        self.desks: dict[str, Desk] = {}
        self._kill = cfg.risk.kill_switch
        self._order_id = 0

    # ----------------------------------------------------------------------------------------------------- input
    def desk(self, ticker: str) -> Desk:
        d = self.desks.get(ticker)
        if d is None:
            spec = spec_for(ticker, self.cfg.execution)
            d = self.desks[ticker] = Desk(ticker, self.cfg, spec, self.shadows, self.live)
            d.main.risk.kill = self._kill
        return d

    def on_batch(self, events: list[InputEvent]) -> list[Event]:
        out: list[Event] = []
        on_event = self.on_event
        for ev in events:
            r = on_event(ev)
            if r:
                out.extend(r)
        return out

    def on_event(self, ev: InputEvent) -> list[Event]:
        tp = type(ev)
        if tp is Trade:
            return self._on_trade(ev)  # type: ignore[arg-type]
        if tp is Book:
            d = self.desks.get(ev.ticker) or self.desk(ev.ticker)  # type: ignore[union-attr]
            d.market.on_book(ev)  # type: ignore[arg-type]
            for s in d.book_listeners:
                s.on_book(ev)
            d.counts["books"] += 1
            return []
        if tp is InvalidTicker:
            self.desks.pop(ev.ticker, None)  # type: ignore[union-attr]
            return []
        return []  # State: connection changes do not move the hierarchy

    def on_order_update(self, u: OrderUpdate) -> list[Event]:
        """A live order's update from the DLL: the Fill it reports (if any) and the position after it."""
        d = self.desks.get(u.ticker)
        ex = d.main.executor if d is not None else None
        if ex is None or not ex.live:
            return []
        f = ex.on_update(u)  # type: ignore[attr-defined]
        if f is None:
            return []
        d.counts["fills"] += 1  # type: ignore[union-attr]
        mark = d.market.mid if d.market.n_trades else f.price  # type: ignore[union-attr]
        return [f, ex.position_event(f.ts, mark, f.trade_id)]

    def _on_trade(self, t: Trade) -> list[Event]:
        if t.edit:  # a re-sent, edited trade: its original was already counted
            return []
        d = self.desks.get(t.ticker) or self.desk(t.ticker)
        m = d.market
        out: list[Event] = []
        ts = t.ts
        lo, hi = d.day_span
        if not lo <= ts < hi:
            day = session_day(ts)
            if day != m.day:
                self._new_day(d, day)
            d.day_span = session_span(day)
        m.on_trade(t)
        n = m.n_trades
        d.counts["trades"] += 1
        k = n % len(d.mids)
        d.mids[k], d.spreads[k] = m.mid, m.spread

        for lane in d.lanes:  # orders that waited for a trade because there was no book
            ex = lane.executor
            if ex is not None and ex._pending:
                for f in ex.on_trade(t):
                    if lane.emit:
                        out.append(f)
                        out.append(ex.position_event(ts, m.mid, t.trade_id))
                        d.counts["fills"] += 1

        sigs: list[Signal] | None = None
        for s in d.specialists:
            sig = s.on_trade(t)
            if sig is not None:
                if sigs is None:
                    sigs = [sig]
                else:
                    sigs.append(sig)
        regime = d.regime.on_trade(ts)

        for queue in d.pending:
            if queue and queue[0][0] <= n:
                self._score(d, queue, n, t, out)

        active = d.active
        if sigs is not None:
            out.extend(sigs)
            d.counts["signals"] += len(sigs)
            # ActiveSignals.add inlined over each group of experts (they share one horizon, so one expiry)
            values, expiry, nxt = active.values, active.expiry, active.next_expiry
            fan, tid, mid, spread, many = d.fan, t.trade_id, m.mid, m.spread, len(sigs) > 1
            for sig in sigs:
                v = sig.direction * sig.confidence
                for queue, h, idx, signs in fan[sig.agent]:
                    e = n + h
                    vals = [sg * v for sg in signs]
                    for i, vi in zip(idx, vals):
                        values[i] = vi
                        expiry[i] = e
                    if e < nxt:
                        nxt = e
                    last = queue[-1] if many and queue else None
                    if last is not None and last[1] == n:  # an earlier signal of this trade: one entry per group
                        last[5].extend(vals)
                        queue[-1] = last[:4] + (last[4] + idx,) + last[5:]
                    else:
                        queue.append((e, n, tid, regime, idx, vals, mid, spread))
            active.next_expiry = nxt
        expired = active.expire(n) if n >= active.next_expiry else False
        if sigs is not None or expired or (self._kill and d.main.executor is not None and d.main.executor.qty):
            for lane in d.lanes:
                self._decide(d, lane, t, regime, sigs is not None, out)
        return out

    # ------------------------------------------------------------------------------------------------- learning
    def _score(self, d: Desk, queue: deque, n: int, t: Trade, out: list[Event]) -> None:
        """Counterfactual P&L, net of costs, of every expert whose horizon ended at this trade."""
        mids, spreads, size = d.mids, d.spreads, len(d.mids)
        pv, fee_rt, slip = d.pv, d.fee_rt, d.slip_cost
        experts, horizons, norm = d.experts, d.horizons, d.norm
        while queue and queue[0][0] <= n:
            _, n0, trade_id, regime, idx, vals, mid0, spread0 = queue.popleft()
            rewards: dict[int, float] = {}
            for i, v in zip(idx, vals):
                k = (n0 + horizons[i]) % size  # the trade the horizon ended at (n itself while size > max_h)
                mid_h = float(mids[k])  # float(): the Ring these replaced stored float64
                spread_h = float(spreads[k])
                cost = (0.5 * (spread0 + spread_h) * pv + fee_rt + slip) * (v if v >= 0 else -v)
                r = v * (mid_h - mid0) * pv - cost
                rewards[i] = r * norm[i]
                out.append(Reward(agent=experts[i], ticker=d.ticker, ts=t.ts, regime=regime, pnl=r,
                                  trade_id=trade_id))
            d.counts["rewards"] += len(rewards)
            d.learner.update(regime, rewards, trade_id)

    # ------------------------------------------------------------------------------------------------- deciding
    def _decide(self, d: Desk, lane: Lane, t: Trade, regime: str, new_signal: bool, out: list[Event]) -> None:
        w = lane.policy.weights(d, regime, t)
        blend = d.coordinator.blend(w, d.active)
        target = d.coordinator.target(blend)
        ex = lane.executor
        if not new_signal and target == lane.target and not (lane.risk.kill and ex is not None and ex.qty):
            return  # an expiry that changes nothing is not a decision
        lane.target = target
        lane.blend = blend
        lane.decisions += 1
        m = d.market
        emit = lane.emit
        if emit:
            d.counts["decisions"] += 1
            coord = d.coordinator
            out.append(Decision(
                ticker=d.ticker, ts=t.ts, target=target, regime=regime, weights=dict(zip(d.experts, w)),
                signals={d.experts[i]: d.active.values[i] for i in d.active.active()},
                reason=coord.reason(regime, w, d.active, blend, target), trade_id=t.trade_id,
                latency_ns=self.clock() - t.received_ns))
        if ex is None:
            return
        pos = ex.committed
        allowed, breaches = lane.risk.vet(t.ts, pos, target, ex.equity(m.mid))
        if emit:
            for rule, detail in breaches:
                out.append(RiskBreach(ticker=d.ticker, ts=t.ts, rule=rule, detail=detail, trade_id=t.trade_id))
            d.counts["breaches"] += len(breaches)
        if allowed == pos:
            return
        dq = allowed - pos
        side = "buy" if dq > 0 else "sell"
        ref = (m.ask if dq > 0 else m.bid) if m.has_book else m.last_price
        band = lane.risk.price_ok(ref, m.last_price, ex.spec.tick)
        if band is not None:
            if emit:
                out.append(RiskBreach(ticker=d.ticker, ts=t.ts, rule="price_band", detail=band, trade_id=t.trade_id))
                d.counts["breaches"] += 1
            return
        if emit:
            self._order_id += 1
            oid = self._order_id
        else:
            oid = 0
        order = Order(order_id=oid, ticker=d.ticker, ts=t.ts, side=side, qty=abs(dq), kind="market", price=ref,
                      reason=f"target {allowed:+d} from {pos:+d}", trade_id=t.trade_id)
        fill = ex.execute(order, m)
        if emit:
            out.append(order)
            d.counts["orders"] += 1
            if fill is not None:
                out.append(fill)
                out.append(ex.position_event(t.ts, m.mid, t.trade_id))
                d.counts["fills"] += 1

    def _new_day(self, d: Desk, day: int) -> None:
        m = d.market
        m.day = day
        for s in d.specialists:
            s.reset_day()
        for lane in d.lanes:
            eq = lane.executor.equity(m.mid) if lane.executor is not None else 0.0
            lane.risk.new_day(day, eq)

    # ----------------------------------------------------------------------------------------------- controls
    def kill_switch(self, on: bool) -> None:
        """On: every ticker's target becomes flat at its next trade and only reducing orders go out."""
        self._kill = bool(on)
        for d in self.desks.values():
            d.main.risk.kill = self._kill

    # --------------------------------------------------------------------------------------------- inspection
    def snapshot(self) -> dict[str, Any]:
        tickers: dict[str, Any] = {}
        for name, d in self.desks.items():
            m = d.market
            specs = {}
            for s in d.specialists:
                last = s.last
                specs[s.name] = {
                    "last": None if last is None else {"direction": last.direction, "confidence": last.confidence,
                                                       "ts": last.ts, "trade_id": last.trade_id},
                    "features": s.features(),
                    "signals": s.fired,
                }
            lane = d.main
            tickers[name] = {
                "mid": m.mid,
                "regime": d.regime.label,
                "regime_features": d.regime.features(),
                "specialists": specs,
                "active": {d.experts[i]: d.active.values[i] for i in d.active.active()},
                "weights": d.learner.snapshot(),
                "target": lane.target,
                "blend": lane.blend,
                "position": lane.executor.snapshot(m.mid) if lane.executor else None,
                "risk": lane.risk.snapshot(),
                "counts": dict(d.counts),
            }
            if len(d.lanes) > 1:
                tickers[name]["shadows"] = {
                    ln.name: ln.executor.snapshot(m.mid) for ln in d.lanes[1:] if ln.executor is not None}
        return {"kill_switch": self._kill, "tickers": tickers}

    def weight_history(self, ticker: str, last: int = 100) -> list[dict[str, Any]]:
        """The learner's last weight updates for a ticker: which trade's signals were scored, in which regime, with
        which learning rate, and the weights after the update."""
        d = self.desks.get(ticker)
        if d is None:
            return []
        hist = list(d.learner.history)[-last:] if last > 0 else []
        return [{"trade_id": tid, "regime": regime, "eta": eta, "weights": dict(zip(d.experts, w))}
                for tid, regime, eta, w in hist]

    def state(self) -> dict[str, Any]:
        return {
            "version": 1,
            "tickers": {
                name: {"learner": d.learner.state(),
                       "position": d.main.executor.state() if d.main.executor else None}
                for name, d in self.desks.items()
            },
        }

    def restore(self, state: dict[str, Any]) -> None:
        for name, s in state.get("tickers", {}).items():
            d = self.desk(name)
            if s.get("learner"):
                d.learner.restore(s["learner"])
            if s.get("position") and d.main.executor is not None:
                d.main.executor.restore(s["position"])
