"""Reconciliation: fills missed while away are caught up, a crash between intent and send is resolved without a
second send, and any difference with the broker is named."""
from app.events import BrokerPosition, OrderUpdate
from app.execution.order_book import OrderBook
from app.execution.reconcile import compare_positions, reconcile


def u(local_id, side, qty, traded, status, avg=5000.0, ticker="WDOZ26"):
    return OrderUpdate(local_id=local_id, cl_ord_id=f"c{local_id}", account="A1", broker=1, ticker=ticker,
                       exchange="F", side=side, order_type="market", status=status, status_name="", qty=qty,
                       traded_qty=traded, leaves_qty=qty - traded, price=-1.0, stop_price=-1.0, avg_price=avg,
                       text="", ts=1, received_ns=1)


def pos(qty, ticker="WDOZ26"):
    return BrokerPosition(account="A1", ticker=ticker, exchange="F", qty=qty, avg_price=5000.0, received_ns=1)


def test_fills_while_away_are_caught_up_and_positions_then_agree():
    book = OrderBook("r")
    o = book.new("WDOZ26", "buy", 2, 1)
    book.sent(o, 11)
    ours = {"WDOZ26": 0}

    def apply(f):
        ours[f.ticker] += f.qty if f.side == "buy" else -f.qty

    rec = reconcile(book, [u(11, "buy", 2, 1, 1), u(11, "buy", 2, 2, 2, avg=5001.0)], {"WDOZ26": 1.0}, apply)
    compare_positions(rec, ours, [pos(2)])
    assert rec.ok and [f.qty for f in rec.fills] == [2] and ours == {"WDOZ26": 2} and o.state == "filled"
    assert "1 fills caught up" in rec.line


def test_an_intent_without_local_id_is_adopted_or_declared_unsent_never_resent():
    book = OrderBook("r")
    sent_before_crash = book.new("WDOZ26", "sell", 1, 1)
    never_sent = book.new("WDOZ26", "buy", 3, 2)
    queued = book.new("WDOZ26", "buy", 1, 3)  # decided, never handed to SendOrder: not reconciliation's business
    sent_before_crash.dispatched = never_sent.dispatched = True
    rec = reconcile(book, [u(21, "sell", 1, 1, 2)], {}, lambda f: None)
    assert rec.adopted == [sent_before_crash.client_id] and sent_before_crash.local_id == 21
    assert rec.unsent == [never_sent.client_id] and never_sent.state == "unsent"
    assert book.sending() == [] and rec.ok and queued.state == "sending"


def test_the_send_ledger_settles_lost_answers_exactly_before_any_guess():
    book = OrderBook("r")
    answered, refused, never, unknown = (book.new("WDOZ26", "sell", 1, n) for n in range(4))
    for o in (answered, refused, never, unknown):
        o.dispatched = True
    # two identical orders at the broker: a guess by ticker/side/qty would take the oldest (21) for `answered`
    broker = [u(21, "sell", 1, 1, 2), u(22, "sell", 1, 1, 2)]
    answers = {answered.client_id: 22, refused.client_id: -2147483645, never.client_id: None, unknown.client_id: 0}
    rec = reconcile(book, broker, {}, lambda f: None, answers)
    assert answered.local_id == 22 and unknown.local_id == 21  # the ledger's answer first, the guess for the rest
    assert refused.state == never.state == "unsent" and rec.ok
    assert sorted(rec.unsent) == sorted([refused.client_id, never.client_id])


def test_differences_are_named_in_one_line():
    book = OrderBook("r")
    lost = book.new("WDOZ26", "buy", 1, 1)
    book.sent(lost, 31)
    rec = reconcile(book, [u(77, "buy", 5, 0, 0)], {}, lambda f: None)
    compare_positions(rec, {"WDOZ26": 0}, [pos(-1)])
    assert not rec.ok and len(rec.differences) == 3
    line = rec.line
    assert "\n" not in line and "local id 31" in line and "local id 77" in line and "ours +0, broker -1" in line


def test_a_lost_answer_is_never_matched_to_an_order_the_ledger_knows():
    book = OrderBook("r")
    lost = book.new("WDOZ26", "sell", 1, 1)
    lost.dispatched = True
    # 21: an earlier run's filled order that looks the same; 22: the one SendOrder took before the crash
    broker = [u(21, "sell", 1, 1, 2), u(22, "sell", 1, 1, 2)]
    rec = reconcile(book, broker, {}, lambda f: None, {lost.client_id: 0}, earlier_ids={21})
    assert lost.local_id == 22 and rec.adopted == [lost.client_id] and rec.strangers == 0 and rec.ok


def test_an_earlier_runs_lost_answer_is_recognised_by_its_intent():
    book = OrderBook("r2")  # a new run: the crashed run's intent is only in the ledger
    broker = [u(21, "sell", 1, 1, 2), u(30, "buy", 2, 2, 2), u(31, "sell", 1, 1, 2, ticker="WINZ26")]
    unresolved = [("r1-7", "WDOZ26", "buy", 2), ("r1-9", "WINZ26", "", 0)]  # an order, and a zero-position
    rec = reconcile(book, broker, {}, lambda f: None, {}, earlier_ids={21}, unresolved=unresolved)
    assert rec.settled == [("r1-7", 30), ("r1-9", 31)] and rec.strangers == 0 and rec.ok
    rec = reconcile(book, broker, {}, lambda f: None, {}, earlier_ids={21}, unresolved=[])
    assert rec.strangers == 2  # without the intents, the two are someone else's
