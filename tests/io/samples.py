"""Events for the io tests: one of every type, and streams of trades/books like a B3 morning."""
from __future__ import annotations

from app.events import (Book, Decision, Fill, InvalidTicker, Metric, Order, Position, Reward, RiskBreach, Signal,
                        State, Trade)

T0 = 1_795_179_600_000_000_000  # 2026-11-20 10:00:00 B3


def trade(i: int, ticker: str = "WDOZ26", ts: int | None = None) -> Trade:
    return Trade(ticker=ticker, exchange="F", ts=T0 + i * 250_000 if ts is None else ts, trade_id=i + 1,
                 price=5000.0 + (i % 7) * 0.5, qty=1 + i % 5, volume=(5000.0 + (i % 7) * 0.5) * 10 * (1 + i % 5),
                 buyer=8, seller=3, aggressor="buy" if i % 2 else "sell", received_ns=i)


def book(i: int, ticker: str = "WDOZ26") -> Book:
    return Book(ticker=ticker, ts=T0 + i * 250_000, side="bid" if i % 2 else "ask",
                levels=((5000.0, 10 + i % 3, 2), (4999.5, 7, 1)), received_ns=i)


def inputs(n: int, tickers: tuple[str, ...] = ("WDOZ26", "WINZ26")) -> list:
    """Trades of two tickers with a book update every third event and a state change at the start."""
    out: list = [State(conn_type=2, result=4, name="MARKET_CONNECTED", received_ns=0)]
    for i in range(n - 1):
        tk = tickers[i % len(tickers)]
        out.append(book(i, tk) if i % 3 == 2 else trade(i, tk))
    return out


def one_of_each() -> list:
    return [
        trade(1),
        book(2),
        State(conn_type=2, result=4, name="MARKET_CONNECTED", received_ns=5, ts=T0),
        InvalidTicker(ticker="XXXX", exchange="F", received_ns=6),
        Signal(agent="flow", ticker="WDOZ26", ts=T0, direction=0.5, confidence=0.8, horizon=50,
               features={"delta": 12.0}, trade_id=2),
        Decision(ticker="WDOZ26", ts=T0, target=1, regime="calm", weights={"flow": 0.6}, signals={"flow": 0.4},
                 reason="blend", trade_id=2, latency_ns=1500),
        Order(order_id=1, ticker="WDOZ26", ts=T0, side="buy", qty=1, kind="market", price=5000.5, reason="target",
              trade_id=2),
        Fill(order_id=1, ticker="WDOZ26", ts=T0, side="buy", qty=1, price=5001.0, fee=1.0, slippage_ticks=1.0,
             trade_id=2),
        Position(ticker="WDOZ26", ts=T0, qty=1, avg_price=5001.0, realized=0.0, unrealized=-5.0, fees=1.0),
        Reward(agent="flow", ticker="WDOZ26", ts=T0, regime="calm", pnl=12.5, trade_id=2),
        RiskBreach(ticker="WDOZ26", ts=T0, rule="max_position", detail="2 > 1", trade_id=2),
        Metric(name="loop", ts=T0, values={"lag_ms": 0.3}),
    ]
