"""Order routing through the DLL, on the owner thread (spec §3.4).

`Router` is the loop-side API: each method is a coroutine that runs one DLL call on the session's owner thread
(`session.owner.call`) - the only thread that ever calls the DLL - and raises `RoutingError` on a negative code.
What the orders then do arrives asynchronously as events (OrderUpdate, TradingResult, RoutingAccount) through the
bridge (routing_callbacks.py); `orders()` and `position()` read the broker's current view on demand.

Structs handed to the DLL are built and kept referenced on the owner thread for the whole call: their c_wchar_p
fields point into Python strings that must outlive it, and the DLL writes MessageID back into them (spec §7.2).
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Protocol

from app.events import BrokerPosition, OrderUpdate, RoutingAccount
from app.feed.clock import now_ns
from app.feed.profitdll import abi
from app.feed.profitdll import routing_abi as rabi
from app.feed.profitdll.credentials import RoutingPassword
from app.feed.profitdll.errors import code_name
from app.feed.profitdll.routing_callbacks import order_update, utf16
from app.feed.profitdll.send_ledger import SendLedger
from app.feed.routing_types import Account, RoutingError, RoutingMoved, SendUnknown  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from app.feed.profitdll.session import DllSession

NL_NO_POSITION = -2147483637


class AccountRef(Protocol):
    broker: int
    account: str


def _check(what: str, rc: int) -> int:
    if rc < 0:
        raise RoutingError(rc, code_name(rc), what)
    return rc


def _account_id(acc: AccountRef) -> rabi.TConnectorAccountIdentifier:
    return rabi.TConnectorAccountIdentifier(0, acc.broker, acc.account, getattr(acc, "sub_account", "") or "", 0)


class Router:
    """Routing calls of one DllSession. Every `_dll_*` body runs on the owner thread only."""

    def __init__(self, session: "DllSession", password: RoutingPassword, ledger_path: Path | None = None) -> None:
        self.session = session
        self._password = password  # never logged: RoutingPassword's repr is masked
        # client id -> what SendOrder answered, across processes (send_ledger.py); opened by the first send that
        # carries a client id, so routing used without client ids (tests, tools) writes nothing
        self.ledger_path = ledger_path
        self.ledger: SendLedger | None = None
        self.last_message_id = 0
        self.returned_ns = 0  # owner thread: now_ns() right after the last SendOrder returned
        # called on the owner thread with (client id, returned_ns) after each send that reached the DLL: how the
        # caller times decision -> SendOrder returned without another round trip (LiveLink's send_latency)
        self.on_sent: Callable[[str, int], None] | None = None

    def _ledger(self) -> SendLedger | None:
        if self.ledger is None and self.ledger_path is not None:
            self.ledger = SendLedger(self.ledger_path)
        return self.ledger

    @property
    def connected(self) -> bool:
        return self.session.conn_state.get(abi.CONN_ROUTING) == abi.ROUTING_BROKER_CONNECTED

    @property
    def epoch(self) -> int:
        """Changes whenever routing reaches the broker again: reconcile before sending for a new value."""
        return self.session.routing_connects

    def __repr__(self) -> str:
        return f"Router(session={self.session.lib.path!r})"

    # -- owner-thread bodies ------------------------------------------------------------------------------------
    def _dll_send(self, acc: AccountRef, ticker: str, exchange: str, side: str, order_type: str, qty: int,
                  price: float, stop_price: float, client_id: str = "", epoch: int | None = None) -> int:
        if side not in rabi.SIDE_V1 or order_type not in rabi.ORDER_TYPE_V1:
            raise ValueError(f"side must be buy|sell and order_type market|limit|stop_limit, got {side!r}, "
                             f"{order_type!r}")
        what = f"SendOrder {side} {qty} {ticker} {order_type}"
        return self._ledgered(client_id, what, epoch, (ticker, side, qty), lambda: self._dll_send_now(
            acc, ticker, exchange, side, order_type, qty, price, stop_price, what))

    def _ledgered(self, client_id: str, what: str, epoch: int | None, order: tuple[str, str, int],
                  call: Callable[[], int]) -> int:
        """Run one order-creating DLL call (owner thread) under the epoch check and the send ledger."""
        # checked here, on the owner thread, right before the call: nothing can reconnect in between
        if epoch is not None and epoch != self.session.routing_connects:
            raise RoutingMoved(f"{what}: routing reconnected since the last reconciliation")
        ledger = self._ledger() if client_id else None
        if ledger is not None:
            prior = ledger.lookup(client_id)
            if prior is not None:
                if prior > 0:  # sent before, by this or an earlier process: the same order, not a second one
                    ledger.deduplicated += 1
                    return prior
                if prior == 0:
                    raise SendUnknown(f"{what}: client id {client_id} reached the DLL before, answer lost")
                raise RoutingError(prior, code_name(prior), f"{what} (refused before)")
            ledger.intent(client_id, what, *order)
        try:
            local_id = call()
        except RoutingError as exc:
            if ledger is not None:
                ledger.answer(client_id, exc.code)
            raise
        if ledger is not None:
            ledger.answer(client_id, local_id)
        if self.on_sent is not None and client_id:
            try:
                self.on_sent(client_id, self.returned_ns)
            except Exception:  # noqa: BLE001 - the order is out: a timing hook must not turn it into a failed send
                pass
        return local_id

    def _dll_send_now(self, acc: AccountRef, ticker: str, exchange: str, side: str, order_type: str, qty: int,
                      price: float, stop_price: float, what: str) -> int:
        s = rabi.TConnectorSendOrder()
        s.Version = 2  # V2: the DLL writes the MessageID that its TradingResult will carry
        s.AccountID = _account_id(acc)
        s.AssetID = abi.TConnectorAssetIdentifier(0, ticker, exchange, 0)
        s.Password = self._password.value
        s.OrderType, s.OrderSide = rabi.ORDER_TYPE_V1[order_type], rabi.SIDE_V1[side]
        s.Price = -1.0 if order_type == "market" else float(price)  # market: -1; non-stop: stop -1 (spec §3.4)
        s.StopPrice = float(stop_price) if order_type == "stop_limit" else -1.0
        s.Quantity = int(qty)
        rc = self.session.lib.SendOrder(ctypes.byref(s))
        self.returned_ns = now_ns()
        local_id = _check(what, rc)
        self.last_message_id = s.MessageID
        return local_id

    def _dll_change(self, acc: AccountRef, local_id: int, price: float, stop_price: float, qty: int) -> int:
        s = rabi.TConnectorChangeOrder()
        s.Version = 1
        s.AccountID = _account_id(acc)
        s.OrderID = rabi.TConnectorOrderIdentifier(0, int(local_id), "")
        s.Password = self._password.value
        s.Price, s.StopPrice, s.Quantity = float(price), float(stop_price), int(qty)
        _check(f"SendChangeOrderV2 order {local_id}", self.session.lib.SendChangeOrderV2(ctypes.byref(s)))
        self.last_message_id = s.MessageID
        return s.MessageID

    def _dll_cancel(self, acc: AccountRef, local_id: int) -> int:
        s = rabi.TConnectorCancelOrder()
        s.Version = 1
        s.AccountID = _account_id(acc)
        s.OrderID = rabi.TConnectorOrderIdentifier(0, int(local_id), "")
        s.Password = self._password.value
        _check(f"SendCancelOrderV2 order {local_id}", self.session.lib.SendCancelOrderV2(ctypes.byref(s)))
        self.last_message_id = s.MessageID
        return s.MessageID

    def _dll_cancel_all(self, acc: AccountRef) -> None:
        s = rabi.TConnectorCancelAllOrders(0, _account_id(acc), self._password.value)
        _check(f"SendCancelAllOrdersV2 {acc.account}", self.session.lib.SendCancelAllOrdersV2(ctypes.byref(s)))

    def _dll_zero(self, acc: AccountRef, ticker: str, exchange: str, price: float, client_id: str = "") -> int:
        return self._ledgered(client_id, f"SendZeroPositionV2 {ticker}", None, (ticker, "", 0),
                              lambda: self._dll_zero_now(acc, ticker, exchange, price))

    def _dll_zero_now(self, acc: AccountRef, ticker: str, exchange: str, price: float) -> int:
        s = rabi.TConnectorZeroPosition()
        s.Version = 2
        s.AccountID = _account_id(acc)
        s.AssetID = abi.TConnectorAssetIdentifier(0, ticker, exchange, 0)
        s.Password = self._password.value
        s.Price = float(price)
        s.PositionType = rabi.POSITION_DAY_TRADE
        rc = self.session.lib.SendZeroPositionV2(ctypes.byref(s))
        self.returned_ns = now_ns()
        local_id = _check(f"SendZeroPositionV2 {ticker}", rc)
        self.last_message_id = s.MessageID
        return local_id

    def _dll_position(self, acc: AccountRef, ticker: str, exchange: str) -> BrokerPosition:
        p = rabi.TConnectorTradingAccountPosition()
        p.Version = 2
        p.AccountID = _account_id(acc)
        p.AssetID = abi.TConnectorAssetIdentifier(0, ticker, exchange, 0)
        p.PositionType = rabi.POSITION_DAY_TRADE
        rc = self.session.lib.GetPositionV2(ctypes.byref(p))
        if rc == NL_NO_POSITION:  # nothing traded in it: flat, not an error
            return BrokerPosition(acc.account, ticker, exchange, 0, 0.0, now_ns())
        _check(f"GetPositionV2 {ticker}", rc)
        qty = p.OpenQuantity if p.OpenSide != 2 else -p.OpenQuantity  # OpenSide 1 bought, 2 sold
        return BrokerPosition(acc.account, ticker, exchange, int(qty), p.OpenAveragePrice, now_ns())

    def _dll_accounts(self) -> list[RoutingAccount]:
        lib = self.session.lib
        n = _check("GetAccountCount", lib.GetAccountCount())
        ids = (rabi.TConnectorAccountIdentifierOut * max(n, 1))()
        got = _check("GetAccounts", lib.GetAccounts(0, 0, n, ids))
        out = []
        for a in ids[:got]:
            account, sub = utf16(a.AccountID, a.AccountIDLength), utf16(a.SubAccountID, a.SubAccountIDLength)
            d = rabi.TConnectorTradingAccountOut()
            d.Version = 1
            d.AccountID = rabi.TConnectorAccountIdentifier(0, a.BrokerID, account, sub, 0)
            _check(f"GetAccountDetails {account}", lib.GetAccountDetails(ctypes.byref(d)))  # lengths
            bufs = [ctypes.create_unicode_buffer(n + 1) for n in
                    (d.BrokerNameLength, d.OwnerNameLength, d.SubOwnerNameLength)]
            d.BrokerName, d.OwnerName, d.SubOwnerName = (ctypes.addressof(b) for b in bufs)
            _check(f"GetAccountDetails {account}", lib.GetAccountDetails(ctypes.byref(d)))
            out.append(RoutingAccount(a.BrokerID, account, sub, bufs[0].value, bufs[1].value, now_ns()))
        return out

    def _dll_orders(self, acc: AccountRef) -> list[OrderUpdate]:
        got: list[OrderUpdate] = []
        received = now_ns()

        def each(ptr: Any, _param: int) -> int:
            try:  # the proc runs synchronously on this (owner) thread; its data dies after each call
                o = ptr.contents
                got.append(order_update(o.OrderID.LocalOrderID, o.OrderID.ClOrderID or "", o.AccountID.AccountID or "",
                                        o.AccountID.BrokerID, o.AssetID.Ticker or "", o.AssetID.Exchange or "", o,
                                        o.TextMessage or "", received))
                return 1
            except BaseException:  # never raise into the DLL; stop the enumeration instead
                return 0

        proc = rabi.TConnectorEnumerateOrdersProc(each)  # referenced until the call returns: it is synchronous
        account = _account_id(acc)
        _check(f"EnumerateAllOrders {acc.account}",
               self.session.lib.EnumerateAllOrders(ctypes.byref(account), 1, 0, proc))
        return got

    # -- loop-side API ------------------------------------------------------------------------------------------
    async def send_order(self, account: AccountRef, ticker: str, exchange: str,
                         side: Literal["buy", "sell"], order_type: Literal["market", "limit", "stop_limit"], qty: int,
                         price: float = -1, stop_price: float = -1, client_id: str = "",
                         epoch: int | None = None) -> int:
        """The DLL's local order id (> 0); progress arrives as OrderUpdate events. With `client_id` (and a ledger)
        a second send of the same id returns the first one's local id instead of sending; with `epoch`, the send is
        refused (RoutingMoved) if routing reconnected since that epoch."""
        return await self.session.owner.call(self._dll_send, account, ticker, exchange, side, order_type, qty, price,
                                             stop_price, client_id, epoch)

    async def earlier_sends(self) -> tuple[set[int], list[tuple[str, str, str, int]]]:
        """What the ledger says this data dir sent (any run): every local id, and the intents whose answer was lost
        as (client id, ticker, side, qty)."""
        return await self.session.owner.call(self._dll_earlier)

    def _dll_earlier(self) -> tuple[set[int], list[tuple[str, str, str, int]]]:
        ledger = self._ledger()
        if ledger is None:
            return set(), []
        return {v for v in ledger.answers.values() if v > 0}, ledger.unresolved()

    async def settle(self, client_id: str, local_id: int) -> None:
        """Reconciliation found the order of a lost answer at the broker: the ledger says so from now on."""
        ledger = await self.session.owner.call(self._ledger)
        if ledger is not None:
            await self.session.owner.call(ledger.answer, client_id, local_id)

    async def lookup(self, client_ids: list[str]) -> dict[str, int | None]:
        """What the ledger says of each client id (send_ledger.lookup); all None without a ledger."""
        ledger = await self.session.owner.call(self._ledger)
        return {c: (ledger.lookup(c) if ledger is not None else None) for c in client_ids}

    async def change_order(self, account: AccountRef, local_id: int, price: float, stop_price: float,
                           qty: int) -> int:
        """Returns the MessageID its TradingResult will carry."""
        return await self.session.owner.call(self._dll_change, account, local_id, price, stop_price, qty)

    async def cancel_order(self, account: AccountRef, local_id: int) -> int:
        """Returns the MessageID its TradingResult will carry; the cancel itself may still lose to a fill."""
        return await self.session.owner.call(self._dll_cancel, account, local_id)

    async def cancel_all(self, account: AccountRef) -> None:
        await self.session.owner.call(self._dll_cancel_all, account)

    async def zero_position(self, account: AccountRef, ticker: str, exchange: str, price: float = -1,
                            client_id: str = "") -> int:
        """Flatten (price -1 = at market); the local id of the order that does it (in the ledger with a client id)."""
        return await self.session.owner.call(self._dll_zero, account, ticker, exchange, price, client_id)

    async def position(self, account: AccountRef, ticker: str, exchange: str) -> BrokerPosition:
        return await self.session.owner.call(self._dll_position, account, ticker, exchange)

    async def accounts(self) -> list[RoutingAccount]:
        return await self.session.owner.call(self._dll_accounts)

    async def orders(self, account: AccountRef) -> list[OrderUpdate]:
        """Every order of the account the DLL knows (EnumerateAllOrders), latest state each."""
        return await self.session.owner.call(self._dll_orders, account)
