"""Figures from the runner's DayResults: per lane, per (day, ticker), per day over tickers, and in total.

- net: equity change marked to the last trade (fees and spread paid); gross = net + fees; slippage: what fills paid
  against the mid at the order (R$, part of net already: a cost measure, not a separate deduction).
- hit rate: share of round trips with positive net P&L.
- max drawdown: the largest fall from a peak of the equity curve (sampled every runner.SAMPLE trades and at day
  end; the total curve adds tickers' curves in exchange-time order).
- Sharpe over days: mean / sample sd of daily net P&L (all tickers); n/a with fewer than 2 days or no variation.
- Sharpe per block: mean / sample sd of the P&L of blocks of runner.BLOCK trades within days (as `eval` does; the
  day's last, partial block counts); t = Sharpe x sqrt(blocks).

This overlaps app/commands/eval.py's _curve_stats; the two can share one module later.
"""
from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from app.backtest.runner import DayResult

EPOCH = _dt.date(1970, 1, 1)


def day_label(day: int) -> str:
    return (EPOCH + _dt.timedelta(days=day)).isoformat()


def sharpe(xs: list[float]) -> float | None:
    n = len(xs)
    if n < 2:
        return None
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    sd = math.sqrt(var)
    return mean / sd if sd > 0 else None


def max_drawdown(values: list[float], start: float = 0.0) -> float:
    peak = start
    dd = 0.0
    for v in values:
        if v > peak:
            peak = v
        elif peak - v > dd:
            dd = peak - v
    return dd


def _base(parts: list[Any]) -> dict[str, Any]:
    net = sum(p.net for p in parts)
    fees = sum(p.fees for p in parts)
    rts = sum(p.round_trips for p in parts)
    wins = sum(p.wins for p in parts)
    return {"net": net, "gross": net + fees, "fees": fees, "slippage": sum(p.slippage for p in parts),
            "round_trips": rts, "hit_rate": wins / rts if rts else None, "turnover": sum(p.turnover for p in parts)}


def _block_stats(blocks: list[float]) -> dict[str, Any]:
    s = sharpe(blocks)
    return {"blocks": len(blocks), "sharpe_block": s, "t_block": None if s is None else s * math.sqrt(len(blocks))}


def total_curve(results: list[DayResult], lane: str) -> list[tuple[int, float]]:
    """(ts, cumulative net P&L over all tickers), points in exchange-time order (ties: ticker order)."""
    points: list[tuple[int, int, float]] = []  # (ts, ticker index, that ticker's cumulative P&L)
    tickers = sorted({r.ticker for r in results})
    offsets = {t: 0.0 for t in tickers}
    for r in sorted(results, key=lambda r: (tickers.index(r.ticker), r.day)):
        ti = tickers.index(r.ticker)
        base = offsets[r.ticker]
        for ts, v in r.lanes[lane].curve:
            points.append((ts, ti, base + v))
        offsets[r.ticker] = base + r.lanes[lane].net
    points.sort(key=lambda p: (p[0], p[1]))
    latest = [0.0] * len(tickers)
    total = 0.0
    out = []
    for ts, ti, v in points:
        total += v - latest[ti]
        latest[ti] = v
        out.append((ts, total))
    return out


def day_row(r: DayResult, lane: str) -> dict[str, Any]:
    ld = r.lanes[lane]
    return {**_base([ld]), "max_dd": max_drawdown([v for _, v in ld.curve]), **_block_stats(ld.blocks),
            "end_position": ld.end_position}


def lane_total(results: list[DayResult], lane: str) -> dict[str, Any]:
    parts = [r.lanes[lane] for r in results]
    daily: dict[int, float] = {}
    for r in results:
        daily[r.day] = daily.get(r.day, 0.0) + r.lanes[lane].net
    days = [daily[d] for d in sorted(daily)]
    curve = total_curve(results, lane)
    blocks = [b for p in parts for b in p.blocks]
    return {**_base(parts), "max_dd": max_drawdown([v for _, v in curve]), "days": len(days),
            "sharpe_days": sharpe(days), **_block_stats(blocks)}


def best_single(totals: dict[str, dict[str, Any]]) -> str | None:
    """The only_<agent> lane with the highest total net P&L (ties: the first in lane order)."""
    singles = [name for name in totals if name.startswith("only_")]
    if not singles:
        return None
    return max(singles, key=lambda s: (totals[s]["net"], -singles.index(s)))


def top_weights(weights: dict[str, float], k: int = 3) -> list[tuple[str, float]]:
    return sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def summarise(results: list[DayResult], lanes: list[str]) -> dict[str, Any]:
    """The whole backtest as plain data (the JSON document's body; the tables render it)."""
    totals = {name: lane_total(results, name) for name in lanes}
    best = best_single(totals)
    days = sorted({r.day for r in results})
    per_day = []
    for day in days:
        rs = [r for r in results if r.day == day]
        per_day.append({
            "day": day_label(day),
            "trades": sum(r.trades for r in rs),
            "lanes": {name: {**_base([r.lanes[name] for r in rs]),
                             "max_dd": max_drawdown([v for _, v in total_curve(rs, name)])} for name in lanes},
            "tickers": {r.ticker: {
                "trades": r.trades, "books": r.books, "sources": r.sources, "duplicates_dropped": r.duplicates,
                "last_price": r.last_price, "learner_updates": [r.updates_start, r.updates_end],
                "top_weights": top_weights(r.weights_end), "weights": r.weights_end, "counts": r.counts,
                "lanes": {name: day_row(r, name) for name in lanes}} for r in rs},
        })
    return {
        "lanes": lanes,
        "best_single": best,
        "totals": totals,
        "best_single_total": None if best is None else {**totals[best], "which": best},
        "days": per_day,
        "tickers": sorted({r.ticker for r in results}),
        "trades": sum(r.trades for r in results),
    }
