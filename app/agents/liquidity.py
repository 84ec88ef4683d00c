"""Liquidity specialist: where the resting size is, and whether a level keeps coming back after being hit.

Features (O(1) per event; book updates change state, trades may signal):
- imbalance: top-of-book (bid_qty - ask_qty) / (bid_qty + ask_qty), in [-1, 1]; imbalance_ewma smooths it per
  book update (imbalance_alpha).
- micro_mid_ticks: micro-price (ask*bid_qty + bid*ask_qty) / (bid_qty + ask_qty) minus mid, in ticks.
- depth_chg_bid / depth_chg_ask: change of the summed size of all published levels of a side over the last
  depth_window book updates (liquidity arriving > 0, leaving < 0).
- refill_bid / refill_ask: times a trade at the best bid (ask) took at least the size displayed there and the next
  update still showed size at that price (an iceberg, or a defender absorbing); reset when the price moves.
Signal: |imbalance_ewma| >= imbalance_trigger toward the heavier side (re-armed below half of it); or a level refilled
refill_min times: support (+1) at the bid, resistance (-1) at the ask.
"""
from __future__ import annotations

from app.agents.base import BaseSpecialist, MarketState, Ring
from app.config import LiquidityConfig
from app.events import Book, Signal, Trade


class Liquidity(BaseSpecialist):
    name = "liquidity"

    def __init__(self, market: MarketState, cfg: LiquidityConfig) -> None:
        super().__init__(market, cfg.horizon)
        self.cfg = cfg
        self.alpha = cfg.imbalance_alpha
        self.imbalance = 0.0
        self.imbalance_ewma = 0.0
        self.micro_mid_ticks = 0.0
        self._depth = {"bid": 0.0, "ask": 0.0}
        self._depth_chg = {"bid": Ring(cfg.depth_window), "ask": Ring(cfg.depth_window)}
        # refill tracking per side: price under watch, a hit that took the whole display pending, refills counted
        self._watch = {"bid": 0.0, "ask": 0.0}
        self._pending = {"bid": False, "ask": False}
        self.refills = {"bid": 0, "ask": 0}
        self._imb_armed = True
        self._refill_fired = {"bid": False, "ask": False}

    def on_book(self, b: Book) -> None:
        m = self.market
        side = b.side
        depth = 0.0
        for level in b.levels:
            depth += level[1]
        self._depth_chg[side].push(depth - self._depth[side])
        self._depth[side] = depth
        top = b.levels[0] if b.levels else None
        if top is not None:
            if top[0] != self._watch[side]:
                self._watch[side] = top[0]
                self.refills[side] = 0
                self._pending[side] = False
                self._refill_fired[side] = False
            elif self._pending[side]:
                self._pending[side] = False
                if top[1] > 0:
                    self.refills[side] += 1
        qb, qa = m.bid_qty, m.ask_qty
        if qb > 0 and qa > 0:
            tot = qb + qa
            imb = (qb - qa) / tot
            self.imbalance = imb
            self.imbalance_ewma += self.alpha * (imb - self.imbalance_ewma)
            self.micro_mid_ticks = ((m.ask * qb + m.bid * qa) / tot - m.mid) / m.tick

    def on_trade(self, t: Trade) -> Signal | None:
        m = self.market
        if m.has_book:
            # the trade took all that was displayed at the touch: if the price still stands, it was refilled
            if t.aggressor == "sell" and t.price == self._watch["bid"] and t.qty >= m.bid_qty:
                self._pending["bid"] = True
            elif t.aggressor == "buy" and t.price == self._watch["ask"] and t.qty >= m.ask_qty:
                self._pending["ask"] = True
        cfg = self.cfg
        e = self.imbalance_ewma
        mag = e if e >= 0 else -e
        if self._imb_armed:
            if mag >= cfg.imbalance_trigger:
                self._imb_armed = False
                d = 1.0 if e > 0 else -1.0
                micro_agree = self.micro_mid_ticks * d
                conf = mag + (0.2 if micro_agree > 0.25 else 0.0)
                return self.signal(t, d, conf, self.features())
        elif mag < 0.5 * cfg.imbalance_trigger:
            self._imb_armed = True
        refills = self.refills
        if refills["bid"] >= cfg.refill_min and not self._refill_fired["bid"]:
            self._refill_fired["bid"] = True
            return self.signal(t, 1.0, 0.6, self.features())
        if refills["ask"] >= cfg.refill_min and not self._refill_fired["ask"]:
            self._refill_fired["ask"] = True
            return self.signal(t, -1.0, 0.6, self.features())
        return None

    def features(self) -> dict[str, float]:
        return {
            "imbalance": self.imbalance,
            "imbalance_ewma": self.imbalance_ewma,
            "micro_mid_ticks": self.micro_mid_ticks,
            "depth_chg_bid": self._depth_chg["bid"].total,
            "depth_chg_ask": self._depth_chg["ask"].total,
            "refill_bid": float(self.refills["bid"]),
            "refill_ask": float(self.refills["ask"]),
        }
