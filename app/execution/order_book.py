"""Our live orders, one explicit state machine each, fed by the DLL's order updates in whatever order they arrive.

Why a state machine and not "the last update wins": the DLL may deliver an update twice, deliver an older one after
a newer one, and keep sending updates for an order across a routing reconnect (spec §8; the stand-in does all three
on purpose). Fills are derived from the growth of `traded_qty`, never from a status word, so a repeated or stale
update can neither create a fill nor undo one: an update whose traded quantity is below what we already counted is
stale and ignored; equal and same status is a duplicate; a terminal order never leaves its terminal state.

Client ids: every order gets `client_id` (`<run>-<n>`) before anything is sent, and the intent is journaled with it
(`Order.order_id` = n). The DLL's LocalOrderID arrives when SendOrder returns; until then the order is `sending`.
After a crash, an intent still `sending` is never sent again: reconciliation looks for it in the DLL's own order
list and adopts it, or declares it unsent (see app.execution.reconcile).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from app.events import Fill, OrderUpdate

# TConnectorOrderStatus (spec §6.2) grouped by what they mean for us
NEW, PARTIAL, FILLED, DONE_FOR_DAY, CANCELED, REPLACED, PENDING_CANCEL = 0, 1, 2, 3, 4, 5, 6
REJECTED, PENDING_NEW, EXPIRED, PENDING_REPLACE = 8, 10, 12, 14
PARTIAL_CANCELED, RECEIVED, PARTIAL_EXPIRED, PARTIAL_REJECTED = 15, 16, 17, 18
TERMINAL = frozenset({FILLED, DONE_FOR_DAY, CANCELED, REJECTED, EXPIRED, PARTIAL_CANCELED, PARTIAL_EXPIRED,
                      PARTIAL_REJECTED, 204, 205})  # 204 OrderNotCreated, 205 CanceledByAdmin

TAKEN_OVER = "taken over from an earlier run"  # OrderSent.why of an order reconciliation took over (take_over)
EARLY_MAX = 10_000  # updates held for orders whose SendOrder has not returned (bounded: a stranger's flood)

State = Literal["sending", "working", "partial", "filled", "canceled", "rejected", "unsent"]


def state_of(status: int, traded: int, qty: int) -> State:
    if status == FILLED or (qty > 0 and traded >= qty):
        return "filled"
    if status == REJECTED or status == 204:
        return "rejected"
    if status in TERMINAL:
        return "canceled"  # canceled, expired, done for day: what traded stays traded, the rest is gone
    return "partial" if traded > 0 else "working"


@dataclass
class LiveOrder:
    client_id: str
    n: int  # our order number (Order.order_id)
    ticker: str
    side: Literal["buy", "sell"]
    qty: int
    trade_id: int  # the trade whose decision produced it
    local_id: int = 0  # the DLL's LocalOrderID, 0 until SendOrder returned
    dispatched: bool = False  # handed to SendOrder (it may have reached the DLL even if no answer came)
    state: State = "sending"
    status: int = -1
    traded: int = 0
    avg_price: float = 0.0
    text: str = ""
    updates: int = 0
    ignored: dict[str, int] = field(default_factory=dict)  # duplicate / stale / after_terminal
    decided_ns: int = 0  # now_ns() when the executor handed it to LiveLink.submit: the decision
    sent_ns: int = 0  # now_ns() on the DLL owner thread right after SendOrder returned it (0: not sent, or remote)

    @property
    def done(self) -> bool:
        return self.state in ("filled", "canceled", "rejected", "unsent")

    @property
    def leaves(self) -> int:
        return 0 if self.done else self.qty - self.traded


class OrderBook:
    """Every live order of a run by client id and by the DLL's local id; turns order updates into Fills."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.by_client: dict[str, LiveOrder] = {}
        self.by_local: dict[int, LiveOrder] = {}
        self.next_n = 1
        self.unknown_updates = 0  # updates for orders that are not ours (another program on the same account)
        # updates that arrived before SendOrder returned their local id (the DLL reports on its own thread, so the
        # loop can see PendingNew, New, even fills, before the owner thread's answer): held, then applied by `sent`
        self.early: dict[int, list[OrderUpdate]] = {}
        self.early_held = 0
        self.in_flight = 0  # orders between the intent and SendOrder's answer
        # replay of a live run: an order made by flatten exists only once its journaled answer arrives, after its
        # first updates; hold every unknown update (bounded) instead of counting it as a stranger's
        self.hold_unknown = False
        self.ignored: dict[str, int] = {"duplicate": 0, "stale": 0, "after_terminal": 0}

    def new(self, ticker: str, side: Literal["buy", "sell"], qty: int, trade_id: int) -> LiveOrder:
        n = self.next_n
        self.next_n += 1
        o = LiveOrder(client_id=f"{self.run_id}-{n}", n=n, ticker=ticker, side=side, qty=qty, trade_id=trade_id)
        self.by_client[o.client_id] = o
        self.in_flight += 1
        return o

    def sent(self, o: LiveOrder, local_id: int) -> list[OrderUpdate]:
        """SendOrder returned `local_id`: the order exists at the DLL. Returns the updates that came before this
        answer, for the caller to apply now (through the executor, so their fills are booked and published)."""
        o.local_id = local_id
        self.by_local[local_id] = o
        if o.state == "sending":
            o.state = "working"
            self.in_flight -= 1
        early = self.early.pop(local_id, [])
        self.early_held -= len(early)
        return early

    def returned(self, client_id: str, ns: int) -> None:
        """Router's hook, called on the DLL owner thread: a single attribute write, which the loop reads only after
        that send's result reached it (so the stamp is there and never torn)."""
        o = self.by_client.get(client_id)
        if o is not None:
            o.sent_ns = ns

    def take_over(self, u: OrderUpdate) -> LiveOrder:
        """A working order an earlier run of ours sent: ours from now on, as it stands (what it already traded is
        in the broker's position, so no Fill is made for it; later updates fill it as usual)."""
        o = self.new(u.ticker, u.side, u.qty, 0)
        o.dispatched = True
        self.sent(o, u.local_id)
        o.traded, o.status, o.avg_price = u.traded_qty, u.status, u.avg_price
        o.state = state_of(u.status, u.traded_qty, u.qty)
        o.text = TAKEN_OVER
        return o

    def not_sent(self, o: LiveOrder, why: str) -> None:
        """SendOrder refused it (a negative code) or reconciliation found it never reached the DLL."""
        if o.state == "sending":
            self.in_flight -= 1
        o.state = "unsent"
        o.text = why

    def apply(self, u: OrderUpdate, fee_per_contract: float) -> Fill | None:
        """One update from the DLL; the Fill for the contracts it newly reports as traded, if any."""
        o = self.by_local.get(u.local_id)
        if o is None:
            if (self.in_flight or self.hold_unknown) and self.early_held < EARLY_MAX:  # maybe ours, not answered yet
                self.early.setdefault(u.local_id, []).append(u)
                self.early_held += 1
            else:
                self.unknown_updates += 1
            return None
        o.updates += 1
        if o.done and o.state != "unsent":
            return self._ignore(o, "after_terminal")
        if u.traded_qty < o.traded:
            return self._ignore(o, "stale")
        if u.traded_qty == o.traded and u.status == o.status:
            return self._ignore(o, "duplicate")
        if u.traded_qty == o.traded and o.status in TERMINAL:
            return self._ignore(o, "stale")
        fill = None
        delta = u.traded_qty - o.traded
        if delta > 0:
            # the price of the newly traded contracts, from the average before and after them
            price = (u.avg_price * u.traded_qty - o.avg_price * o.traded) / delta
            fill = Fill(order_id=o.n, ticker=o.ticker, ts=u.ts, side=o.side, qty=delta, price=price,
                        fee=fee_per_contract * delta, slippage_ticks=0.0, trade_id=o.trade_id)
            o.traded, o.avg_price = u.traded_qty, u.avg_price
        o.status = u.status
        o.text = u.text or o.text
        o.state = state_of(u.status, o.traded, o.qty)
        return fill

    def _ignore(self, o: LiveOrder, why: str) -> None:
        o.ignored[why] = o.ignored.get(why, 0) + 1
        self.ignored[why] += 1
        return None

    def working(self) -> list[LiveOrder]:
        return [o for o in self.by_client.values() if not o.done]

    def sending(self) -> list[LiveOrder]:
        """Orders handed to SendOrder whose answer never came (not those still waiting in a queue)."""
        return [o for o in self.by_client.values() if o.state == "sending" and o.dispatched]

    def snapshot(self) -> dict[str, object]:
        states: dict[str, int] = {}
        for o in self.by_client.values():
            states[o.state] = states.get(o.state, 0) + 1
        return {"orders": len(self.by_client), "states": states, "ignored": dict(self.ignored),
                "unknown_updates": self.unknown_updates, "early_held": self.early_held,
                "working": [{"client_id": o.client_id, "local_id": o.local_id, "ticker": o.ticker, "side": o.side,
                             "qty": o.qty, "traded": o.traded, "state": o.state} for o in self.working()]}
