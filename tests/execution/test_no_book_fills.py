"""Market orders without a book: never filled on the favourable side of the spread the tape implies."""
import numpy as np
import pytest

from app.agents.base import MarketState
from app.events import Book, Order, Trade
from app.execution.contracts import ContractSpec
from app.execution.paper import PaperExecutor

TICK = 0.5
WDO = ContractSpec("WDO", tick=TICK, point_value=10.0, fee=1.0)


def order(side: str, oid: int, ts: int = 0) -> Order:
    return Order(order_id=oid, ticker="WDOF19", ts=ts, side=side, qty=1, kind="market", price=0.0, reason="",
                 trade_id=oid)


def trade(k: int, side: str, price: float) -> Trade:
    return Trade(ticker="WDOF19", exchange="F", ts=k, trade_id=k, price=price, qty=1, volume=0.0, buyer=1,
                 seller=2, aggressor=side, received_ns=0)


class Tape:
    """A no-book tape with known quotes: buys print at the ask, sells at the bid; the quotes move by one tick on
    a fraction `move` of trades. Orders go in after a trade and fill on the next one, as in the hierarchy."""

    def __init__(self, spread_ticks: int, move: float, seed: int = 3) -> None:
        self.rng = np.random.default_rng(seed)
        self.spread = spread_ticks * TICK
        self.move = move
        self.bid = 5000.0
        self.market = MarketState("WDOF19", TICK)
        self.ex = PaperExecutor("WDOF19", WDO)
        self.k = 0
        self.fills = []  # (fill, true bid, true ask, the trade it filled on, the spread estimate after it)

    def step(self, side: str) -> None:
        if self.move and self.rng.random() < self.move:
            self.bid += TICK * (1 if self.rng.random() < 0.5 else -1)
        self.k += 1
        t = trade(self.k, side, self.bid + self.spread if side == "buy" else self.bid)
        self.market.on_trade(t)  # the hierarchy's order: market state first, then the waiting orders
        for f in self.ex.on_trade(t):
            self.fills.append((f, self.bid, self.bid + self.spread, t, self.market.spread))

    def send(self, side: str) -> None:
        assert self.ex.execute(order(side, self.k, self.k), self.market) is None  # no book: it waits


@pytest.mark.parametrize("spread_ticks", [1, 2])
def test_on_alternating_aggressors_buys_pay_the_ask_and_sells_the_bid_never_better(spread_ticks):
    tape = Tape(spread_ticks, move=0.0)
    for k in range(400):
        tape.step("buy" if k % 2 == 0 else "sell")
        if k >= 3:  # after the first bounce: orders of both sides after buys and after sells
            tape.send("buy" if k % 4 < 2 else "sell")
    assert len(tape.fills) > 300
    favourable_before = 0
    for f, bid, ask, t, _ in tape.fills:
        if f.side == "buy":
            assert f.price == ask
            favourable_before += t.price < ask  # the old rule (the next trade's price) would have paid the bid
        else:
            assert f.price == bid
            favourable_before += t.price > bid
    assert favourable_before > len(tape.fills) // 3  # the case the rule exists for really occurs here


@pytest.mark.parametrize("spread_ticks", [1, 2])
def test_with_moving_quotes_no_fill_is_on_the_favourable_half_and_the_average_pays_the_touch(spread_ticks):
    tape = Tape(spread_ticks, move=0.05)
    rng = np.random.default_rng(11)
    for k in range(6000):
        tape.step("buy" if rng.random() < 0.5 else "sell")
        if k > 50 and k % 3 == 0:
            tape.send("buy" if rng.random() < 0.5 else "sell")
    paid = []  # ticks beyond the true touch, against the order
    for f, bid, ask, _, _ in tape.fills:
        mid = 0.5 * (bid + ask)
        beyond = f.price - ask if f.side == "buy" else bid - f.price
        assert (f.price - mid if f.side == "buy" else mid - f.price) > 0.0  # never at or past the mid
        paid.append(beyond / TICK)
    # on average at least the touch, and not a made-up penalty: within 0.1 tick of it
    assert 0.0 <= float(np.mean(paid)) < 0.1


def test_every_no_book_fill_pays_at_least_half_the_estimated_spread_from_the_mid_the_tape_implies():
    tape = Tape(2, move=0.1, seed=5)
    rng = np.random.default_rng(2)
    for k in range(3000):
        side = "buy" if rng.random() < 0.5 else "sell"
        tape.step(side)
        if k > 10 and k % 2:
            tape.send("sell" if side == "buy" else "buy")
    assert len(tape.fills) > 1000
    for f, _, _, t, spread in tape.fills:
        implied_mid = t.price - (1 if t.aggressor == "buy" else -1) * 0.5 * spread
        if f.side == "buy":
            assert f.price >= implied_mid + 0.5 * spread - 1e-9
        else:
            assert f.price <= implied_mid - 0.5 * spread + 1e-9


def test_a_no_book_buy_after_a_sell_print_pays_the_ask_even_if_the_next_print_is_another_sell():
    m = MarketState("WDOF19", TICK)
    ex = PaperExecutor("WDOF19", WDO, slippage_ticks=1.0)
    for k, (side, price) in enumerate([("buy", 5000.5), ("sell", 5000.0), ("sell", 5000.0)]):
        t = trade(k, side, price)
        m.on_trade(t)
        fills = ex.on_trade(t)
        if k == 1:
            ex.execute(order("buy", 1), m)
    assert m.spread == TICK
    assert [f.price for f in fills] == [5000.5 + TICK]  # the ask, plus one tick of slippage


def test_the_worse_of_the_touch_before_and_after_the_wait_is_paid():
    m = MarketState("WDOF19", TICK)
    ex = PaperExecutor("WDOF19", WDO)
    for k, (side, price) in enumerate([("buy", 5000.5), ("sell", 5000.0)]):
        m.on_trade(trade(k, side, price))
    ex.execute(order("sell", 1), m)  # the last print hit the bid at 5000.0
    t = trade(3, "buy", 5002.0)  # the market jumped: the next print lifts a 5002.0 ask (bid 5001.5)
    m.on_trade(t)
    assert [f.price for f in ex.on_trade(t)] == [5000.0]  # sold no better than the bid it could see
    ex.execute(order("buy", 2), m)  # last print lifted 5002.0
    t = trade(4, "sell", 5000.0)  # and fell back: the implied ask is 5000.0 + spread
    m.on_trade(t)
    assert [f.price for f in ex.on_trade(t)] == [5002.0]


def test_a_book_that_appears_while_the_order_waits_gives_its_touch():
    m = MarketState("WDOF19", TICK)
    ex = PaperExecutor("WDOF19", WDO)
    m.on_trade(trade(1, "buy", 5000.5))
    ex.execute(order("buy", 1), m)
    m.on_book(Book(ticker="WDOF19", ts=2, side="bid", levels=((5001.0, 5, 1),), received_ns=0))
    m.on_book(Book(ticker="WDOF19", ts=2, side="ask", levels=((5001.5, 5, 1),), received_ns=0))
    t = trade(3, "sell", 5001.0)
    m.on_trade(t)
    assert [f.price for f in ex.on_trade(t)] == [5001.5]


def test_an_order_before_any_trade_waits_and_pays_the_touch_of_the_first_trade():
    m = MarketState("WDOF19", TICK)
    ex = PaperExecutor("WDOF19", WDO)
    assert ex.execute(order("buy", 1), m) is None
    t = trade(1, "sell", 5000.0)
    m.on_trade(t)
    assert [f.price for f in ex.on_trade(t)] == [5000.5]  # hit bid + one tick (the floor: no bounce seen yet)


def test_through_the_hierarchy_a_no_book_tape_fills_at_the_implied_touch():
    from app import config
    from app.events import Fill
    from app.hierarchy import Hierarchy

    cfg = config.load(overrides={"coordination.learner.regime_experts": False})
    h = Hierarchy(cfg, clock=lambda: 0)
    d = h.desk("WDOJ24")
    d.learner.g = [0.0] * len(d.experts)  # the coordinator follows orderflow alone
    d.learner.g[d.follow["orderflow"]], d.learner.g[d.index["flat"]] = 0.97, 0.03
    ts, k, bid = 1_700_000_000 * 10**9, 0, 5000.0
    tape = []
    for j in range(6):  # bounce: buys lift 5000.5, sells hit 5000.0
        side = "buy" if j % 2 == 0 else "sell"
        tape.append((side, bid + 0.5 if side == "buy" else bid))
    tape += [("buy", 5000.5), ("buy", 5001.0), ("buy", 5001.5), ("buy", 5001.5), ("buy", 5001.5)]  # a sweep
    tape += [("sell", 5001.0), ("buy", 5001.5)]  # the order waits for this sell print: it must not fill at 5001.0
    fills = []
    for side, price in tape:
        k += 1
        ts += 10**9
        out = h.on_event(Trade(ticker="WDOJ24", exchange="F", ts=ts, trade_id=k, price=price, qty=1, volume=0.0,
                               buyer=1, seller=2, aggressor=side, received_ns=0))
        fills += [e for e in out if isinstance(e, Fill)]
    assert d.market.spread == TICK and not d.market.has_book
    assert [(f.side, f.price) for f in fills] == [("buy", 5001.5)]  # the ask, not the 5001.0 bid it printed at
