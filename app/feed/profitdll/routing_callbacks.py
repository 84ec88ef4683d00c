"""The routing callbacks the DLL calls on its connector thread: order updates, trading-message results, accounts.

Same rules as callbacks.py (gate first, copy every field, never keep a pointer, never raise into the DLL, every
thunk kept alive for the life of the process). The order callback reads the order with GetOrderDetails - an
accessor, valid only synchronously inside this callback (spec §7.1) - by the two-call pattern: a first call with
NULL string pointers returns the lengths, the second fills buffers this module owns.

Events go to the loop through the same bridge as market data (Bridge.put_routing); while no bridge is attached
(between an App stop and the next start) they wait in `session.routing_backlog`, because an order's fill must
not be lost the way a tick may be skipped.
"""
from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any, Callable

from app.events import OrderUpdate, RoutingAccount, TradingResult
from app.feed.b3time import local_to_ns
from app.feed.clock import now_ns
from app.feed.profitdll import routing_abi as rabi
from app.feed.profitdll.callbacks import _KEEPALIVE, GATE

if TYPE_CHECKING:
    from app.feed.profitdll.session import DllSession


def utf16(units: Any, length: int) -> str:
    """An inline WideChar[100] (UTF-16 code units) -> str."""
    n = max(0, min(int(length), len(units)))
    return bytes(units)[: 2 * n].decode("utf-16-le", "replace")


def systemtime_ns(st: Any) -> int:
    return local_to_ns(st.wYear, st.wMonth, st.wDay, st.wHour, st.wMinute, st.wSecond, st.wMilliseconds) \
        if st.wYear else 0


def order_update(local_id: int, cl_ord_id: str, account: str, broker: int, ticker: str, exchange: str, o: Any,
                 text: str, received: int) -> OrderUpdate:
    """From the numeric fields both TConnectorOrderOut and TConnectorOrder share."""
    return OrderUpdate(
        local_id, cl_ord_id, account, broker, ticker, exchange, rabi.SIDE_NAME.get(o.OrderSide, "buy"),  # type: ignore[arg-type]
        rabi.ORDER_TYPE_NAME.get(o.OrderType, "other"), o.OrderStatus,  # type: ignore[arg-type]
        rabi.ORDER_STATUS.get(o.OrderStatus, f"Status{o.OrderStatus}"), o.Quantity, o.TradedQuantity,
        o.LeavesQuantity, o.Price, o.StopPrice, o.AveragePrice, text, systemtime_ns(o.LastUpdate), received)


class RoutingCallbacks:
    """Builds and owns the routing callback objects of one DLL session."""

    def __init__(self, session: "DllSession") -> None:
        self.session = session
        self.errors = 0
        self.last_error = ""
        self.detail_errors = 0  # GetOrderDetails refused inside the order callback
        self.updates = 0
        self.results = 0
        # (broker, account) -> received_ns of the last "order history loaded" (TConnectorAccountCallback)
        self.history_loaded: dict[tuple[int, str], int] = {}
        self.account = self._make(rabi.TAccountCallback, self._account_fn())
        self.order = self._make(rabi.TConnectorOrderCallback, self._order_fn())
        self.history = self._make(rabi.TConnectorAccountCallback, self._history_fn())
        self.result = self._make(rabi.TConnectorTradingMessageResultCallback, self._result_fn())

    @staticmethod
    def _make(prototype: Any, fn: Callable[..., None]) -> Any:
        cb = prototype(fn)
        _KEEPALIVE.append(cb)
        return cb

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _emit(self, event: Any) -> None:
        bridge = self.session.bridge
        if bridge is None:
            self.session.routing_backlog.append(event)
        else:
            bridge.put_routing(event)

    def _order_fn(self) -> Callable[..., None]:
        gate, session = GATE, self.session

        def on_order(ident: rabi.TConnectorOrderIdentifier) -> None:
            if not gate[0]:
                return
            received = now_ns()
            try:
                session.callbacks.pinner.pin_current()
                details = session.lib.GetOrderDetails
                out = rabi.TConnectorOrderOut()
                out.Version = 1
                out.OrderID.LocalOrderID = ident.LocalOrderID
                cl_ord = ident.ClOrderID or ""  # copied now: the DLL's string dies with this call
                out.OrderID.ClOrderID = cl_ord
                ref = ctypes.byref(out)
                if details(ref) != 0:  # first call: lengths only (string pointers NULL)
                    self.detail_errors += 1
                    return
                ticker = ctypes.create_unicode_buffer(out.AssetID.TickerLength + 1)
                exchange = ctypes.create_unicode_buffer(out.AssetID.ExchangeLength + 1)
                text = ctypes.create_unicode_buffer(out.TextMessageLength + 1)
                out.AssetID.Ticker = ctypes.addressof(ticker)
                out.AssetID.Exchange = ctypes.addressof(exchange)
                out.TextMessage = ctypes.addressof(text)
                if details(ref) != 0:
                    self.detail_errors += 1
                    return
                acc = out.AccountID
                self.updates += 1
                self._emit(order_update(ident.LocalOrderID, cl_ord, utf16(acc.AccountID, acc.AccountIDLength),
                                        acc.BrokerID, ticker.value, exchange.value, out, text.value, received))
            except BaseException as exc:
                self._failed(exc)

        return on_order

    def _result_fn(self) -> Callable[..., None]:
        gate = GATE

        def on_result(ptr: Any) -> None:
            if not gate[0]:
                return
            received = now_ns()
            try:
                self.session.callbacks.pinner.pin_current()
                r = ptr.contents
                self.results += 1
                self._emit(TradingResult(r.MessageID, r.OrderID.LocalOrderID, r.OrderID.ClOrderID or "", r.BrokerID,
                                         r.ResultCode, rabi.TRADING_RESULT.get(r.ResultCode, f"Code{r.ResultCode}"),
                                         r.Message or "", received))
            except BaseException as exc:
                self._failed(exc)

        return on_result

    def _account_fn(self) -> Callable[..., None]:
        gate = GATE

        def on_account(broker: int, broker_name: str | None, account: str | None, holder: str | None) -> None:
            if not gate[0]:
                return
            received = now_ns()
            try:
                self.session.callbacks.pinner.pin_current()
                self._emit(RoutingAccount(broker, account or "", "", broker_name or "", holder or "", received))
            except BaseException as exc:
                self._failed(exc)

        return on_account

    def _history_fn(self) -> Callable[..., None]:
        gate = GATE

        def on_history(account: rabi.TConnectorAccountIdentifier) -> None:
            if not gate[0]:
                return
            try:
                # bookkeeping only: after a routing reconnect this says the broker's view is complete again
                self.history_loaded[(account.BrokerID, account.AccountID or "")] = now_ns()
            except BaseException as exc:
                self._failed(exc)

        return on_history

    def stats(self) -> dict[str, Any]:
        return {"routing_callback_errors": self.errors, "last_routing_callback_error": self.last_error,
                "order_detail_errors": self.detail_errors, "order_updates": self.updates,
                "trading_results": self.results, "histories_loaded": len(self.history_loaded)}
