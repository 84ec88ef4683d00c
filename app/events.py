"""Every event that crosses a module boundary, defined once.

Events are immutable msgspec Structs: cheap to build on the DLL callback thread, encoded to msgpack for the journal
and the wire without a hand-written schema, and decoded back into the same types for replay. `tag=True` puts the
class name in the encoded form (field "type") so a stream of mixed events decodes into the right classes.

Time fields: `ts` is exchange time in ns since the epoch (UTC); `received_ns` is `app.feed.clock.now_ns()` stamped first
thing in the DLL callback (or by the replay source), the origin of every latency figure.
"""
from __future__ import annotations

from typing import Literal, Union

import msgspec

SCHEMA_VERSION = 1

Aggressor = Literal["buy", "sell", "direct", "auction", "unknown"]
Side = Literal["bid", "ask"]


class Event(msgspec.Struct, frozen=True, tag=True, gc=False):
    """Base of every event; `tag=True` makes the encoded form self-describing."""


class Trade(Event, frozen=True, tag=True, gc=False):
    ticker: str
    exchange: str
    ts: int  # exchange time, ns since epoch UTC
    trade_id: int  # the DLL's trade number: unique and increasing per ticker and session
    price: float
    qty: int  # contracts
    volume: float  # financial volume as the DLL reports it
    buyer: int  # buyer agent (broker) id
    seller: int  # seller agent (broker) id
    aggressor: Aggressor
    received_ns: int
    edit: bool = False  # the DLL re-sent an edited trade (TC_IS_EDIT / bEdit)
    # the aggressor was inferred by the tick rule (tapes without one, e.g. B3's TradeIntraday file), not reported by
    # the exchange; last and defaulted so journals written before it still decode
    aggressor_inferred: bool = False


class Book(Event, frozen=True, tag=True, gc=False):
    """One side of the book after an update: levels best first as (price, qty, count)."""

    ticker: str
    ts: int
    side: Side
    levels: tuple[tuple[float, int, int], ...]
    received_ns: int
    source: Literal["tiny", "depth", "replay"] = "depth"


class State(Event, frozen=True, tag=True, gc=False):
    """A connection state change from the DLL (conn_type, result as in the manual) or from the feed itself."""

    conn_type: int
    result: int
    name: str  # e.g. "MARKET_CONNECTED"
    received_ns: int
    ts: int = 0


class InvalidTicker(Event, frozen=True, tag=True, gc=False):
    ticker: str
    exchange: str
    received_ns: int
    ts: int = 0


class Signal(Event, frozen=True, tag=True, gc=False):
    agent: str
    ticker: str
    ts: int
    direction: float  # [-1, 1]
    confidence: float  # [0, 1]
    horizon: int  # in trades of this ticker
    features: dict[str, float]
    trade_id: int  # the trade that produced it
    received_ns: int = 0


class Decision(Event, frozen=True, tag=True, gc=False):
    ticker: str
    ts: int
    target: int  # target position in contracts
    regime: str
    weights: dict[str, float]
    signals: dict[str, float]  # agent -> direction*confidence that entered the blend
    reason: str
    trade_id: int
    latency_ns: int  # received_ns of the trade -> decision made


class Order(Event, frozen=True, tag=True, gc=False):
    order_id: int
    ticker: str
    ts: int
    side: Literal["buy", "sell"]
    qty: int
    kind: Literal["market", "limit"]
    price: float  # limit price, or the reference price for market orders
    reason: str
    trade_id: int


class Fill(Event, frozen=True, tag=True, gc=False):
    order_id: int
    ticker: str
    ts: int
    side: Literal["buy", "sell"]
    qty: int
    price: float
    fee: float  # R$
    slippage_ticks: float
    trade_id: int


class Position(Event, frozen=True, tag=True, gc=False):
    ticker: str
    ts: int
    qty: int  # signed contracts
    avg_price: float
    realized: float  # R$ net of fees
    unrealized: float  # R$
    fees: float
    trade_id: int = 0  # the trade whose fill produced this position


class Reward(Event, frozen=True, tag=True, gc=False):
    agent: str
    ticker: str
    ts: int
    regime: str
    pnl: float  # counterfactual R$ net of costs at the agent's horizon
    trade_id: int  # the trade whose signal is being scored


class RiskBreach(Event, frozen=True, tag=True, gc=False):
    ticker: str
    ts: int
    rule: str  # max_position | max_daily_loss | max_order_qty | max_orders_per_minute | price_band | kill_switch
    detail: str
    trade_id: int


class Metric(Event, frozen=True, tag=True, gc=False):
    name: str
    ts: int
    values: dict[str, float]


# --- routing (live orders through the DLL; spec §4, §5.6-§5.7, §6.2, §6.4) ---------------------------------------
# Copied field by field inside the DLL's order callbacks (GetOrderDetails by the two-call pattern) and handed to the
# loop through the same bridge as market data. Sides here are words; the DLL's 1 buy / 2 sell stay in the binding.

class OrderUpdate(Event, frozen=True, tag=True, gc=False):
    """One state of one order as the DLL reports it (TConnectorOrderOut)."""
    local_id: int  # the DLL's LocalOrderID (ProfitID), > 0
    cl_ord_id: str  # the DLL/broker's ClOrderID ("" until known)
    account: str
    broker: int
    ticker: str
    exchange: str
    side: Literal["buy", "sell"]
    order_type: Literal["market", "limit", "stop_limit", "other"]
    status: int  # TConnectorOrderStatus (§6.2)
    status_name: str  # e.g. "PartiallyFilled"
    qty: int
    traded_qty: int
    leaves_qty: int
    price: float  # -1 for market orders
    stop_price: float  # -1 when not a stop order
    avg_price: float  # average fill price so far
    text: str  # the DLL's text message (reject reason and the like)
    ts: int  # the order's last update, exchange time ns (0 when the DLL gave none)
    received_ns: int


class TradingResult(Event, frozen=True, tag=True, gc=False):
    """The result of one trading message (TConnectorTradingMessageResult, §6.4)."""
    message_id: int
    local_id: int
    cl_ord_id: str
    broker: int
    code: int
    code_name: str  # e.g. "RejectedBroker", "Accepted"
    message: str
    received_ns: int
    ts: int = 0


class RoutingAccount(Event, frozen=True, tag=True, gc=False):
    """A trading account the routing login can use (TConnectorAccountIdentifier + GetAccountDetails)."""
    broker: int
    account: str
    sub_account: str
    broker_name: str
    owner: str
    received_ns: int
    ts: int = 0


class BrokerPosition(Event, frozen=True, tag=True, gc=False):
    """The broker's position in one ticker (GetPositionV2, day-trade position), signed contracts."""
    account: str
    ticker: str
    exchange: str
    qty: int
    avg_price: float
    received_ns: int
    ts: int = 0


class OrderSent(Event, frozen=True, tag=True, gc=False):
    """What became of one of our live orders at SendOrder: `local_id` > 0 the DLL took it, 0 it was never sent
    (`why`). Journaled beside the inputs (app.execution.routing_journal) with the broker's updates, so a replay of
    a live run rebuilds the same order book at the same points of the tape."""
    n: int  # our order number (Order.order_id)
    client_id: str
    ticker: str
    side: Literal["buy", "sell"]
    qty: int
    local_id: int
    why: str
    received_ns: int
    ts: int = 0


class KillSwitch(Event, frozen=True, tag=True, gc=False):
    """The kill switch turned on or off during a live run (reconciliation disagreed, flatten), journaled likewise."""
    on: bool
    why: str
    received_ns: int
    ts: int = 0


class Routed(Event, frozen=True, tag=True, gc=False):
    """One journaled routing input and where it happened: after the input journal's frame `after_seq`."""
    after_seq: int
    event: Union[OrderUpdate, OrderSent, KillSwitch, BrokerPosition]


InputEvent = Union[Trade, Book, State, InvalidTicker]
RoutingEvent = Union[OrderUpdate, TradingResult, RoutingAccount, BrokerPosition]  # from the DLL's routing side
AnyEvent = Union[Trade, Book, State, InvalidTicker, Signal, Decision, Order, Fill, Position, Reward, RiskBreach, Metric,
                 OrderUpdate, TradingResult, RoutingAccount, BrokerPosition]
