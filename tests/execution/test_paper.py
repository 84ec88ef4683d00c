import pytest

from app.agents.base import MarketState
from app.events import Order, Trade
from app.execution.contracts import ContractSpec
from app.execution.paper import PaperExecutor

WDO = ContractSpec("WDO", tick=0.5, point_value=10.0, fee=1.0)


def order(side: str, qty: int, oid: int = 1) -> Order:
    return Order(order_id=oid, ticker="WDOJ24", ts=1, side=side, qty=qty, kind="market", price=0.0, reason="",
                 trade_id=7)


def market(bid: float | None, ask: float | None) -> MarketState:
    m = MarketState("WDOJ24", 0.5)
    if bid is not None:
        m.bid, m.ask, m.bid_qty, m.ask_qty, m.has_book = bid, ask, 10, 10, True
        m.mid = (bid + ask) / 2
    return m


def test_market_orders_fill_at_the_touch_plus_slippage_and_pay_fees():
    ex = PaperExecutor("WDOJ24", WDO, slippage_ticks=1.0)
    f = ex.execute(order("buy", 2), market(5000.0, 5000.5))
    assert f.price == 5001.0 and f.qty == 2 and f.fee == 2.0 and f.slippage_ticks == 1.0
    f = ex.execute(order("sell", 2), market(5002.0, 5002.5))
    assert f.price == 5001.5
    # 2 contracts x 0.5 pt x R$10 = R$10 gross, minus R$4 fees
    assert ex.realized == pytest.approx(6.0) and ex.realized_points == pytest.approx(1.0)
    assert ex.qty == 0 and ex.round_trips == 1 and ex.wins == 1 and ex.turnover == 4


def test_round_trip_at_the_touch_costs_one_tick_plus_two_fees():
    ex = PaperExecutor("WDOJ24", WDO)
    ex.execute(order("buy", 1), market(5000.0, 5000.5))
    ex.execute(order("sell", 1), market(5000.0, 5000.5))
    assert ex.realized == pytest.approx(-(5.0 + 2.0)) == -WDO.round_trip_cost()
    assert ex.wins == 0 and ex.round_trips == 1


def test_without_a_book_a_sell_waits_for_the_next_trade_and_pays_the_bid_it_implies():
    ex = PaperExecutor("WDOJ24", WDO)
    m = market(None, None)
    assert ex.execute(order("sell", 1), m) is None
    t = Trade(ticker="WDOJ24", exchange="F", ts=5, trade_id=9, price=4999.0, qty=3, volume=0.0, buyer=1, seller=2,
              aggressor="buy", received_ns=0)
    m.on_trade(t)
    fills = ex.on_trade(t)
    # a buy aggression printed at the ask: the bid was one (estimated, floor) spread of 0.5 below
    assert [(f.price, f.trade_id, f.ts) for f in fills] == [(4998.5, 9, 5)]
    assert ex.qty == -1 and ex.on_trade(t) == []


def test_unrealized_in_reais_and_ticks_and_average_price_when_adding():
    ex = PaperExecutor("WDOJ24", WDO)
    ex.execute(order("buy", 1), market(4999.5, 5000.0))
    ex.execute(order("buy", 1), market(5000.5, 5001.0))
    assert ex.avg_price == 5000.5
    snap = ex.snapshot(5002.0)
    assert snap["unrealized"] == pytest.approx(2 * 1.5 * 10.0)
    assert snap["unrealized_ticks"] == pytest.approx(6.0)
    assert ex.equity(5002.0) == pytest.approx(30.0 - 2.0)


def test_flipping_closes_the_old_position_and_opens_the_new_one_at_the_fill_price():
    ex = PaperExecutor("WDOJ24", WDO)
    ex.execute(order("buy", 1), market(4999.5, 5000.0))
    ex.execute(order("sell", 3), market(5001.0, 5001.5))
    assert ex.qty == -2 and ex.avg_price == 5001.0
    assert ex.realized_points == pytest.approx(1.0) and ex.round_trips == 1


def test_state_round_trip():
    ex = PaperExecutor("WDOJ24", WDO)
    ex.execute(order("buy", 2), market(4999.5, 5000.0))
    other = PaperExecutor("WDOJ24", WDO)
    other.restore(ex.state())
    assert other.snapshot(5001.0) == ex.snapshot(5001.0)
