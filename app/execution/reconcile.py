"""Our orders and position against the broker's, before any new order is sent (at start and after every routing
reconnect). A difference stops trading: the caller turns the kill switch on and logs `line`.

What is compared, and why in this order:
1. Orders we know by the DLL's local id take the broker's latest state (fills that happened while we were away
   become Fills through the same state machine as live updates).
2. Orders we never saw a local id for (the DLL's process died between the intent and SendOrder's return): the send
   ledger (app.feed.profitdll.send_ledger) says exactly whether SendOrder was reached and what it answered. Only
   when it cannot (the intent is there, the answer is not) is the order looked for among the broker's orders we do
   not know: the oldest one with the same ticker, side and quantity is adopted; none = it never reached the broker.
   Either way it is never sent again (the next decision sends what is still needed).
3. Orders of our earlier runs (their local ids are in the send ledger: this data dir sent them; or an earlier
   run's intent whose answer died with it matches the order's ticker, side and quantity) are ours too: a working
   one is taken into the book as it stands (its past fills are in the broker's position already). Any
   other order at the broker, working, is a difference; one of ours the broker does not list is a difference.
4. Finally the position per ticker: ours after step 1-3 against the broker's. When every order the broker lists
   for the account is ours (this run's or an earlier run's), a different position can only come from our earlier
   runs' fills (after a kill -9, the learned state is seconds old): the broker's position is taken as ours, and
   said so. With any order of someone else at the broker, a difference stops trading.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from app.events import BrokerPosition, Fill, OrderUpdate
from app.execution.order_book import TERMINAL, OrderBook


@dataclass
class Reconciliation:
    differences: list[str] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)  # what happened at the broker while we did not listen
    adopted: list[str] = field(default_factory=list)  # client ids found at the broker after a crash
    earlier: list[OrderUpdate] = field(default_factory=list)  # earlier runs' working orders, taken into the book
    strangers: int = 0  # orders at the broker neither this run's nor an earlier run's (any state)
    positions_taken: list[BrokerPosition] = field(default_factory=list)  # broker positions taken as ours
    latest: dict[int, OrderUpdate] = field(default_factory=dict)  # the broker's latest state of each order
    settled: list[tuple[str, int]] = field(default_factory=list)  # (client id, local id) of lost answers found
    unsent: list[str] = field(default_factory=list)  # client ids that never reached the DLL

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def line(self) -> str:
        if self.ok:
            taken = "".join(f", position {p.ticker} {p.qty:+d} taken from the broker (our earlier runs' fills)"
                            for p in self.positions_taken)
            return (f"reconciled with the broker: {len(self.fills)} fills caught up, {len(self.adopted)} orders "
                    f"adopted, {len(self.unsent)} never sent, {len(self.earlier)} working orders of earlier runs "
                    f"taken over{taken}")
        more = f" (+{len(self.differences) - 3} more)" if len(self.differences) > 3 else ""
        return "broker and journal differ, trading stopped: " + "; ".join(self.differences[:3]) + more


def reconcile(book: OrderBook, broker_orders: list[OrderUpdate], fee_for: dict[str, float],
              apply_fill, answers: dict[str, int | None] | None = None,
              earlier_ids: set[int] | frozenset[int] = frozenset(),
              unresolved: list[tuple[str, str, str, int]] | None = None) -> Reconciliation:
    """Bring `book` to the broker's state; `apply_fill(fill)` books each caught-up fill into our position (it must
    be applied before the position comparison). `fee_for` maps ticker -> R$ per contract. `answers`: the send
    ledger's word on each order still `sending` (None never reached SendOrder, 0 unknown, > 0 its local id, < 0
    refused). `earlier_ids`: local ids the send ledger holds (every order this data dir ever sent); `unresolved`:
    earlier runs' intents whose answer was lost, (client id, ticker, side, qty; side "" = any)."""
    out = Reconciliation()
    latest = out.latest
    for u in broker_orders:  # the broker may list an order more than once: keep its most advanced state
        prev = latest.get(u.local_id)
        if prev is None or (u.traded_qty, u.status in TERMINAL) >= (prev.traded_qty, prev.status in TERMINAL):
            latest[u.local_id] = u
    for local_id, o in list(book.by_local.items()):
        u = latest.get(local_id)
        if u is None:
            if not o.done:
                out.differences.append(f"our working order {o.client_id} (local id {local_id}) is not at the broker")
            continue
        f = book.apply(u, fee_for.get(o.ticker, 0.0))
        if f is not None:
            out.fills.append(f)
            apply_fill(f)
    answers = answers or {}
    for o in sorted(book.sending(), key=lambda o: o.n):
        answer = answers.get(o.client_id)
        if answer is None or answer < 0:
            if o.client_id in answers:  # the ledger knows: never reached SendOrder, or the DLL refused it
                book.not_sent(o, "never reached SendOrder" if answer is None else f"SendOrder refused it ({answer})")
                out.unsent.append(o.client_id)
        elif answer > 0:
            book.sent(o, answer)
            out.adopted.append(o.client_id)
            u = latest.get(answer)
            if u is None:
                out.differences.append(f"our order {o.client_id} (local id {answer}) is not at the broker")
                continue
            f = book.apply(u, fee_for.get(o.ticker, 0.0))
            if f is not None:
                out.fills.append(f)
                apply_fill(f)
    strangers = sorted((u for lid, u in latest.items() if lid not in book.by_local), key=lambda u: u.local_id)
    for o in sorted(book.sending(), key=lambda o: o.n):  # what the ledger could not say: by the broker's list
        # only among orders the ledger does not know: an order it knows is another intent's, whatever it looks like
        match = next((u for u in strangers if u.ticker == o.ticker and u.side == o.side and u.qty == o.qty
                      and u.local_id not in earlier_ids), None)
        if match is None:
            book.not_sent(o, "not at the broker after a restart: never sent")
            out.unsent.append(o.client_id)
            continue
        strangers.remove(match)
        book.sent(o, match.local_id)
        out.adopted.append(o.client_id)
        f = book.apply(match, fee_for.get(o.ticker, 0.0))
        if f is not None:
            out.fills.append(f)
            apply_fill(f)
    lost = list(unresolved or [])
    for u in strangers:
        if u.local_id not in earlier_ids:  # an earlier run's send whose answer died with it, recognised by its intent
            hit = next((x for x in lost if x[1] == u.ticker and (not x[2] or (x[2] == u.side and x[3] == u.qty))),
                       None)
            if hit is not None:
                lost.remove(hit)
                out.settled.append((hit[0], u.local_id))
                earlier_ids = earlier_ids | {u.local_id}
        if u.local_id in earlier_ids:
            if u.status not in TERMINAL:
                book.take_over(u)
                out.earlier.append(u)
            continue
        out.strangers += 1
        if u.status not in TERMINAL:
            out.differences.append(f"working order at the broker that is not ours: local id {u.local_id} "
                                   f"{u.side} {u.leaves_qty} {u.ticker}")
    return out


def compare_positions(out: Reconciliation, ours: dict[str, int], positions: list[BrokerPosition]) -> Reconciliation:
    """Step 4: our position per ticker (after the caught-up fills) against the broker's; a difference is taken from
    the broker when no order of someone else is at the broker (the caller books `positions_taken`)."""
    theirs = {p.ticker: p for p in positions}
    for ticker in sorted(set(ours) | set(theirs)):
        p = theirs.get(ticker)
        a, b = ours.get(ticker, 0), (p.qty if p is not None else 0)
        if a == b:
            continue
        if p is not None and not out.strangers and not out.differences:
            out.positions_taken.append(p)
        else:
            out.differences.append(f"{ticker} position: ours {a:+d}, broker {b:+d}")
    return out
