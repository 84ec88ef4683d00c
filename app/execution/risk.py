"""Risk limits, checked on the target before any order exists; every intervention is a RiskBreach event.

Rules, in the order applied (per ticker):
- kill_switch: the target becomes flat; orders can only reduce the position.
- max_position: |target| is clipped to max_position.
- max_daily_loss: once today's P&L (realized + unrealized since the 09:00 opening, R$) is <= -max_daily_loss, the
  target may only reduce the position (reduce-only) until the next session.
- max_order_qty (when set): one order moves the position by at most this many contracts; the rest waits for the
  next decision.
- max_orders_per_minute: an order that would be the (limit + 1)-th within 60 s of exchange time is not sent.
- price_band_ticks (when set, `price_ok`): an order priced further than this from the last trade is not sent (a
  stale or crossed book must not become a live order far from the market).
"""
from __future__ import annotations

from collections import deque
from typing import Any

from app.agents.base import NS
from app.config import RiskConfig

MINUTE_NS = 60 * NS


def _reduce_only(position: int, target: int) -> int:
    """The closest target to `target` that does not add to |position| or flip it."""
    if position > 0:
        return min(max(target, 0), position)
    if position < 0:
        return max(min(target, 0), position)
    return 0


class RiskGate:
    def __init__(self, cfg: RiskConfig) -> None:
        self.cfg = cfg
        self.kill = cfg.kill_switch
        self.day = -1
        self.day_start_equity = 0.0
        self.day_pnl = 0.0
        self._orders: deque[int] = deque()
        self.breaches: dict[str, int] = {}

    def new_day(self, day: int, equity: float) -> None:
        self.day = day
        self.day_start_equity = equity
        self.day_pnl = 0.0

    def vet(self, ts: int, position: int, target: int, equity: float) -> tuple[int, list[tuple[str, str]]]:
        """The allowed target and the breaches (rule, detail) that changed it."""
        cfg = self.cfg
        out: list[tuple[str, str]] = []
        if self.kill:
            if target != 0:
                out.append(("kill_switch", f"target {target:+d} -> 0 (kill switch on)"))
            target = 0
        lim = cfg.max_position
        if target > lim or target < -lim:
            clipped = lim if target > 0 else -lim
            out.append(("max_position", f"target {target:+d} clipped to {clipped:+d} (max {lim})"))
            target = clipped
        self.day_pnl = equity - self.day_start_equity
        if self.day_pnl <= -cfg.max_daily_loss:
            allowed = _reduce_only(position, target)
            if allowed != target:
                out.append(("max_daily_loss", f"day P&L R$ {self.day_pnl:.2f} <= -{cfg.max_daily_loss:g}: "
                                              f"target {target:+d} -> {allowed:+d} (reduce-only)"))
                target = allowed
        step = cfg.max_order_qty
        if step and abs(target - position) > step:
            clipped = position + (step if target > position else -step)
            out.append(("max_order_qty", f"target {target:+d} -> {clipped:+d} (at most {step} per order)"))
            target = clipped
        if target != position:
            orders = self._orders
            while orders and ts - orders[0] >= MINUTE_NS:
                orders.popleft()
            if len(orders) >= cfg.max_orders_per_minute:
                out.append(("max_orders_per_minute", f"{len(orders)} orders in the last 60 s: "
                                                     f"target {target:+d} not sent, stays {position:+d}"))
                target = position
            else:
                orders.append(ts)
        for rule, _ in out:
            self.breaches[rule] = self.breaches.get(rule, 0) + 1
        return target, out

    def price_ok(self, price: float, last: float, tick: float) -> str | None:
        """None when an order at `price` is inside the band around the last trade; else the breach detail."""
        band = self.cfg.price_band_ticks
        if not band or last != last or last <= 0 or abs(price - last) <= band * tick + 1e-9:
            return None
        self.breaches["price_band"] = self.breaches.get("price_band", 0) + 1
        return f"price {price:g} is {abs(price - last) / tick:.1f} ticks from the last trade {last:g} (band {band:g})"

    def snapshot(self) -> dict[str, Any]:
        return {"kill_switch": self.kill, "day_pnl": self.day_pnl, "orders_last_minute": len(self._orders),
                "breaches": dict(self.breaches)}
