"""Order routing across the process boundary: the parent's `RemoteRouter` and the child's `serve`.

With `feed.isolation = "process"` the DLL, and so SendOrder, lives in the feed child. `RemoteRouter` has the
Router's API (app.feed.profitdll.routing), so LiveLink cannot tell the two apart: every call becomes one `route`
command on the control socket (never queued behind market data) and the child runs it on its DLL owner thread.
Its reply is the acknowledgement: a send is acknowledged once the child answers with the DLL's local id.

Why sends cannot be retried blindly, and what is done instead: if the child dies with a send in flight, the order
may or may not have reached the DLL. The parent never re-sends; it raises SendUnknown, and reconciliation with the
next child asks that child's send ledger (a file in the data dir, written by the previous child around the call)
what SendOrder answered for that client id. A send repeated with the same client id is answered from the ledger by
any child, never sent twice (deduplication by client order id across child restarts).

Epochs: the parent's epoch is (child incarnation, routing reconnects seen in that child's State events). A send for
an older incarnation is refused here; the reconnect count is checked again by the child, on its owner thread.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Optional

import msgspec

from app.events import BrokerPosition, OrderUpdate, RoutingAccount
from app.feed.base import FeedError
from app.feed.process import protocol
from app.feed.routing_types import Account, RoutingError, RoutingMoved, SendUnknown

if TYPE_CHECKING:
    from app.feed.process.feed import ProcessFeed

log = logging.getLogger("app.feed.process")

_EPOCH_BITS = 32
_ERRORS = {"RoutingMoved": RoutingMoved, "SendUnknown": SendUnknown}
_VALUE_TYPES: dict[str, Any] = {"position": BrokerPosition, "accounts": list[RoutingAccount],
                                "orders": list[OrderUpdate], "lookup": dict[str, Optional[int]]}
TIMEOUT_S = 10.0


def _account(acc: Any) -> list[Any]:
    return [acc.broker, acc.account, getattr(acc, "sub_account", "") or ""]


class RemoteRouter:
    def __init__(self, feed: "ProcessFeed") -> None:
        self.feed = feed
        self.calls = 0
        self.unknown = 0  # sends whose child died before answering
        # as Router.on_sent: (client id, the child's owner-thread stamp right after SendOrder returned); the
        # stamp crosses the process boundary because now_ns is a system-wide monotonic clock (app.feed.clock)
        self.on_sent: Any = None

    def __repr__(self) -> str:
        return "RemoteRouter(feed child)"

    def _child(self) -> Any:
        sup = self.feed.supervisor
        child = sup.child if sup is not None else None
        return child if child is not None and child.ready.done() and child.alive else None

    @property
    def connected(self) -> bool:
        child = self._child()
        return child is not None and child.routing_connected

    @property
    def epoch(self) -> int:
        child = self._child()
        return -2 if child is None else (child.incarnation << _EPOCH_BITS) | child.routing_connects

    async def _call(self, op: str, *args: Any) -> Any:
        return (await self._request(op, *args))[0]

    async def _request(self, op: str, *args: Any) -> tuple[Any, dict[str, Any]]:
        child = self._child()
        if child is None:
            raise RoutingError(0, "NoFeedChild", f"{op}: the feed child is restarting")
        self.calls += 1
        try:
            reply = await child.request(protocol.ROUTE, msgspec.msgpack.encode({"op": op, "args": list(args)}),
                                        timeout=TIMEOUT_S)
        except (asyncio.TimeoutError, FeedError, OSError) as exc:
            if op == "send_order":
                self.unknown += 1
                raise SendUnknown(f"SendOrder: the feed child ended before answering ({exc or 'timeout'})") from None
            raise RoutingError(0, "NoFeedChild", f"{op}: the feed child ended before answering") from None
        if not reply.get("ok"):
            cls = _ERRORS.get(reply.get("kind", ""))
            if cls is not None:
                raise cls(reply.get("detail", ""))
            raise RoutingError(int(reply.get("code", 0)), str(reply.get("name", "")),
                               str(reply.get("detail") or reply.get("error", op)))
        value = reply.get("value")
        typ = _VALUE_TYPES.get(op)
        return (msgspec.convert(value, typ) if typ is not None else value), reply

    async def send_order(self, account: Any, ticker: str, exchange: str, side: str, order_type: str, qty: int,
                         price: float = -1, stop_price: float = -1, client_id: str = "",
                         epoch: int | None = None) -> int:
        child_epoch = None
        if epoch is not None:
            child = self._child()
            if child is None or epoch >> _EPOCH_BITS != child.incarnation:
                raise RoutingMoved("SendOrder: the feed child was replaced since the last reconciliation")
            child_epoch = epoch & ((1 << _EPOCH_BITS) - 1)
        local_id, reply = await self._request("send_order", _account(account), ticker, exchange, side, order_type, qty,
                                              price, stop_price, client_id, child_epoch)
        if self.on_sent is not None and client_id and reply.get("returned_ns"):
            self.on_sent(client_id, int(reply["returned_ns"]))
        return int(local_id)

    async def change_order(self, account: Any, local_id: int, price: float, stop_price: float, qty: int) -> int:
        return int(await self._call("change_order", _account(account), local_id, price, stop_price, qty))

    async def cancel_order(self, account: Any, local_id: int) -> int:
        return int(await self._call("cancel_order", _account(account), local_id))

    async def cancel_all(self, account: Any) -> None:
        await self._call("cancel_all", _account(account))

    async def zero_position(self, account: Any, ticker: str, exchange: str, price: float = -1,
                            client_id: str = "") -> int:
        return int(await self._call("zero_position", _account(account), ticker, exchange, price, client_id))

    async def position(self, account: Any, ticker: str, exchange: str) -> BrokerPosition:
        return await self._call("position", _account(account), ticker, exchange)  # type: ignore[no-any-return]

    async def accounts(self) -> list[RoutingAccount]:
        return await self._call("accounts")  # type: ignore[no-any-return]

    async def orders(self, account: Any) -> list[OrderUpdate]:
        return await self._call("orders", _account(account))  # type: ignore[no-any-return]

    async def earlier_sends(self) -> tuple[set[int], list[tuple[str, str, str, int]]]:
        ids, unresolved = await self._call("earlier_sends")
        return set(ids), [tuple(u) for u in unresolved]  # type: ignore[misc]

    async def settle(self, client_id: str, local_id: int) -> None:
        await self._call("settle", client_id, local_id)

    async def lookup(self, client_ids: list[str]) -> dict[str, int | None]:
        if not client_ids:
            return {}
        return await self._call("lookup", client_ids)  # type: ignore[no-any-return]


# -- the child's side ---------------------------------------------------------------------------------------------
async def serve(router: Any, request: bytes) -> dict[str, Any]:
    """Run one `route` request on the child's Router; the reply dict (never raises)."""
    try:
        req = msgspec.msgpack.decode(request)
        op, args = str(req["op"]), list(req["args"])
        if op not in _OPS:
            raise ValueError(f"unknown routing op {op!r}")
        if router is None:
            raise RoutingError(0, "NoRouting", "the feed child has no router (feed.routing is false)")
        if op not in _NO_ACCOUNT and args and isinstance(args[0], list):
            args[0] = Account(*args[0])
        value = await getattr(router, op)(*args)
        reply = {"ok": True, "error": "", "value": msgspec.to_builtins(value)}
        if op == "send_order":
            reply["returned_ns"] = router.returned_ns
        return reply
    except RoutingError as exc:
        return {"ok": False, "error": str(exc), "kind": type(exc).__name__, "code": exc.code, "name": exc.name,
                "detail": exc.detail}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "kind": "", "code": 0, "name": "",
                "detail": f"{type(exc).__name__}: {exc}"}


_OPS = frozenset({"send_order", "change_order", "cancel_order", "cancel_all", "zero_position", "position", "accounts",
                  "orders", "lookup", "earlier_sends", "settle"})
_NO_ACCOUNT = frozenset({"lookup", "earlier_sends", "settle"})
