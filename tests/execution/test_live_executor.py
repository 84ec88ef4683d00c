"""The live executor inside the hierarchy: orders go to `submit` and fill only when the broker says so; a decision
while an order works does not send the same step again; broker fills become the same Fill and Position events."""
from app import config
from app.events import Fill, Order, OrderUpdate, Position
from app.execution.live import LiveExecutor
from app.execution.order_book import OrderBook
from app.hierarchy import Hierarchy
from tests.execution.test_risk import Stream


def live_hierarchy():
    cfg = config.load(overrides={"coordination.learner.regime_experts": False, "coordination.max_contracts": 4})
    book, sent = OrderBook("run"), []
    h = Hierarchy(cfg, clock=lambda: 0,
                  live=lambda ticker, spec: LiveExecutor(ticker, spec, book, lambda o, order: sent.append((o, order))))
    s = Stream()
    h.on_batch(s.quote())
    d = h.desk("WDOJ24")
    d.learner.g = [0.0] * len(d.experts)
    d.learner.g[d.follow["orderflow"]], d.learner.g[d.index["flat"]] = 0.97, 0.03
    return h, s, book, sent


def update(o, local_id, traded, status, avg):
    return OrderUpdate(local_id=local_id, cl_ord_id="", account="A1", broker=1, ticker="WDOJ24", exchange="F",
                       side=o.side, order_type="market", status=status, status_name="", qty=o.qty, traded_qty=traded,
                       leaves_qty=o.qty - traded, price=-1.0, stop_price=-1.0, avg_price=avg, text="", ts=123,
                       received_ns=1)


def test_orders_wait_for_the_broker_and_are_not_repeated_while_working():
    h, s, book, sent = live_hierarchy()
    out = h.on_batch(s.noise(3) + s.sweep("buy"))
    assert [type(e) for e in out if isinstance(e, (Order, Fill))] == [Order]  # no fill from the tape
    assert len(sent) == 1 and sent[0][0].state == "sending"
    o, order = sent[0]
    book.sent(o, 501)
    h.on_batch(s.sweep("buy"))  # the same signal again: the working order already carries the step
    lane = h.desk("WDOJ24").main
    assert sum(x[1].qty for x in sent) == lane.target == lane.executor.committed  # working orders count as position
    ev = h.on_order_update(update(o, 501, o.qty, 2, 5000.5))
    assert [type(e) for e in ev] == [Fill, Position]
    assert ev[0].qty == o.qty and ev[0].order_id == order.order_id and ev[1].qty == o.qty
    assert h.on_order_update(update(o, 501, o.qty, 2, 5000.5)) == []  # the duplicate changes nothing
    assert h.snapshot()["tickers"]["WDOJ24"]["position"]["committed"] == o.qty
