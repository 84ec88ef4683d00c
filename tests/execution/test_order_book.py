"""The live order state machine: fills from traded-quantity growth only; duplicates, stale and post-terminal
updates change nothing, in any delivery order."""
import itertools
import random

from app.events import OrderUpdate
from app.execution.order_book import OrderBook


def upd(local_id, status, traded, avg, qty=3, leaves=None):
    return OrderUpdate(local_id=local_id, cl_ord_id="", account="A1", broker=1, ticker="WDOZ26", exchange="F",
                       side="buy", order_type="limit", status=status, status_name="", qty=qty, traded_qty=traded,
                       leaves_qty=qty - traded if leaves is None else leaves, price=5000.0, stop_price=-1.0,
                       avg_price=avg, text="", ts=1, received_ns=1)


def test_partial_then_filled_prices_each_fill_from_the_averages():
    book = OrderBook("r")
    o = book.new("WDOZ26", "buy", 3, trade_id=7)
    assert o.client_id == "r-1" and o.state == "sending"
    book.sent(o, 41)
    assert book.apply(upd(41, 10, 0, 0.0), 0.5) is None
    f1 = book.apply(upd(41, 1, 1, 5000.0), 0.5)
    f2 = book.apply(upd(41, 2, 3, 5001.0), 0.5)
    assert (f1.qty, f1.price, f1.fee) == (1, 5000.0, 0.5)
    assert f2.qty == 2 and abs(f2.price - 5001.5) < 1e-9 and f2.order_id == 1 and f2.trade_id == 7
    assert o.state == "filled" and o.done and o.leaves == 0


def test_every_delivery_order_with_duplicates_gives_the_same_total_fill():
    seq = [upd(9, 10, 0, 0.0), upd(9, 0, 0, 0.0), upd(9, 1, 1, 5000.0), upd(9, 1, 2, 5000.5), upd(9, 2, 3, 5001.0)]
    rng = random.Random(3)
    for perm in itertools.permutations(seq):
        stream = list(perm) + [rng.choice(seq) for _ in range(3)]
        book = OrderBook("r")
        o = book.new("WDOZ26", "buy", 3, 1)
        book.sent(o, 9)
        fills = [f for u in stream if (f := book.apply(u, 0.0)) is not None]
        assert sum(f.qty for f in fills) == 3  # the filled update is always applied, whenever it comes
        assert o.state == "filled"
        assert abs(sum(f.qty * f.price for f in fills) - 3 * 5001.0) < 1e-6  # cost = the DLL's average x qty


def test_terminal_states_are_final_and_unknown_orders_are_counted():
    book = OrderBook("r")
    o = book.new("WDOZ26", "sell", 2, 1)
    book.sent(o, 5)
    book.apply(upd(5, 4, 0, 0.0, qty=2), 0.0)  # canceled
    assert o.state == "canceled"
    assert book.apply(upd(5, 1, 1, 5000.0, qty=2), 0.0) is None  # a fill after cancel is not believed
    assert book.ignored["after_terminal"] == 1 and o.traded == 0
    assert book.apply(upd(99, 0, 0, 0.0), 0.0) is None and book.unknown_updates == 1
    r = book.new("WDOZ26", "buy", 1, 1)
    book.sent(r, 6)
    book.apply(upd(6, 8, 0, 0.0, qty=1), 0.0)
    assert r.state == "rejected" and book.working() == []
