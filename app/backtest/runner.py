"""Walk-forward run of the hierarchy over grouped tapes: per ticker, its days in time order.

Per ticker one Hierarchy processes every day in order, so the learner's state carries from day to day and every
decision uses only the past (the Hierarchy itself starts a new session at a day change: specialists reset, the risk
gate's daily loss resets). With `fresh_each_day` a new Hierarchy is built for every day (nothing learned carries;
an open position is dropped at its day-end mark, which is what the day's figures already counted). Tickers are
independent desks, so each gets its own Hierarchy; nothing is shared between them.

Every lane trades the same signals with the same fees, fill rules and risk limits: the coordinator (main lane,
learned weights), "flat" (all weight on the flat expert: never trades, P&L exactly 0, a check on the plumbing),
and the baselines of sources.baseline_policies ("equal", "only_<agent>").

Slippage paid: each lane's paper executor is replaced, before any event, by a MeteredExecutor that records the
mid at the moment of each order (the "mid at decision", see decision_mid) and charges (fill - mid) signed against
us x qty x point value when the fill happens (at once at the touch, or at the next trade when there is no book).
Shadow lanes emit no events, so this is the one measurement that works the same for every lane; for the main lane
it equals what its Order and Fill events imply (tested).

Marks: equity is marked to the last trade price. Day figures are equity at the day's last trade minus equity at
the previous day's last trade (so an overnight position's gap is in the next day), i.e. open positions are marked
to the last trade at day end.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from app.agents.base import MarketState
from app.config import Config
from app.events import Decision, Fill, Order, Trade
from app.execution.contracts import ContractSpec
from app.execution.paper import PaperExecutor
from app.coordination.policies import Policy
from app.hierarchy import Hierarchy
from app.backtest.days import DayTape
from app.backtest.sources import baseline_policies, require_spec

SAMPLE = 100  # trades between equity-curve samples
BLOCK = 1000  # trades per P&L block (Sharpe per block, as in eval)
MAIN = "coordinator"


def decision_mid(m: MarketState) -> float:
    """The mid an order is measured against: the book's when there is one; else the mid implied by the last trade,
    as the paper executor reads the tape (a buy-aggressor print was at the ask: mid = price - spread/2; a sell at
    the bid: + spread/2; a cross or auction print is taken as the mid)."""
    if m.has_book or not m.n_trades:
        return m.mid
    return m.last_price - 0.5 * m.last_sign * m.spread


class MeteredExecutor(PaperExecutor):
    """A PaperExecutor that also totals the slippage its fills paid against the mid at the order (R$)."""

    def __init__(self, ticker: str, spec: ContractSpec, slippage_ticks: float = 0.0) -> None:
        super().__init__(ticker, spec, slippage_ticks)
        self.slippage = 0.0
        self._waiting: list[float] = []  # mid at decision of each order still waiting for a trade

    def execute(self, order: Order, market: MarketState) -> Fill | None:
        mid = decision_mid(market)
        fill = super().execute(order, market)
        if fill is None:
            self._waiting.append(mid)
        else:
            self._charge(fill, mid)
        return fill

    def on_trade(self, t: Trade) -> list[Fill]:
        fills = super().on_trade(t)
        if fills:
            mids, self._waiting = self._waiting, []
            for f, mid in zip(fills, mids):
                self._charge(f, mid)
        return fills

    def _charge(self, f: Fill, mid: float) -> None:
        d = f.price - mid if f.side == "buy" else mid - f.price
        self.slippage += d * f.qty * self.spec.point_value


@dataclass
class LaneDay:
    """One lane on one ticker and day (R$ unless said otherwise)."""

    net: float = 0.0
    fees: float = 0.0
    slippage: float = 0.0
    round_trips: int = 0
    wins: int = 0
    turnover: int = 0
    end_position: int = 0
    curve: list[tuple[int, float]] = field(default_factory=list)  # (ts, P&L since day start) every SAMPLE trades
    blocks: list[float] = field(default_factory=list)  # P&L of each block of BLOCK trades (last one partial)

    @property
    def gross(self) -> float:
        return self.net + self.fees


@dataclass
class DayResult:
    ticker: str
    day: int
    trades: int
    books: int
    first_ts: int
    last_ts: int
    last_price: float
    sources: list[str]
    duplicates: int
    lanes: dict[str, LaneDay]
    updates_start: int  # learner updates before the day's first event
    updates_end: int
    weights_end: dict[str, float]  # learner's global weights at day end
    weights_path: list[tuple[int, dict[str, float]]]  # (ts, weights of the last coordinator Decision) per sample
    counts: dict[str, int]


def lane_policies(cfg: Config) -> dict[str, Policy]:
    return baseline_policies(cfg)


def lane_names(cfg: Config) -> list[str]:
    return [MAIN, *lane_policies(cfg)]


class _Marks:
    """Start-of-period totals of one executor, to take differences."""

    __slots__ = ("equity", "fees", "slippage", "round_trips", "wins", "turnover")

    def __init__(self, ex: MeteredExecutor, mark: float) -> None:
        self.equity = ex.equity(mark)
        self.fees = ex.fees
        self.slippage = ex.slippage
        self.round_trips = ex.round_trips
        self.wins = ex.wins
        self.turnover = ex.turnover


def new_hierarchy(cfg: Config, ticker: str) -> Hierarchy:
    h = Hierarchy(cfg, clock=lambda: 0, shadows=lane_policies(cfg))
    spec = require_spec(ticker, cfg.execution)
    d = h.desk(ticker)
    for lane in d.lanes:  # metered executors before any event
        lane.executor = MeteredExecutor(ticker, spec, cfg.execution.slippage_ticks)
    return h


def run_ticker(cfg: Config, days: list[DayTape], fresh_each_day: bool = False,
               progress: Callable[[int], None] | None = None) -> list[DayResult]:
    """All days of one ticker in time order; progress(n) is told every SAMPLE trades."""
    if not days:
        return []
    ticker = days[0].ticker
    h = new_hierarchy(cfg, ticker)
    out: list[DayResult] = []
    mark = 0.0  # last trade price of the previous day
    for k, dt in enumerate(days):
        if fresh_each_day and k > 0:
            h = new_hierarchy(cfg, ticker)
            mark = 0.0
        out.append(_run_day(h, dt, mark, progress))
        mark = out[-1].last_price
    return out


def _run_day(h: Hierarchy, dt: DayTape, prev_mark: float, progress: Callable[[int], None] | None) -> DayResult:
    d = h.desk(dt.ticker)
    lanes = d.lanes
    exs: list[MeteredExecutor] = [ln.executor for ln in lanes]  # type: ignore[misc]
    start = [_Marks(ex, prev_mark) for ex in exs]
    block_start = [m.equity for m in start]
    curves: list[list[tuple[int, float]]] = [[] for _ in lanes]
    blocks: list[list[float]] = [[] for _ in lanes]
    weights_path: list[tuple[int, dict[str, float]]] = []
    updates_start = d.learner.updates
    counts0 = dict(d.counts)
    last_weights: dict[str, float] | None = None
    n = books = 0
    m = d.market
    on_event = h.on_event
    last_ts = 0
    for ev in dt.events:
        out = on_event(ev)
        if type(ev) is not Trade:
            books += 1
            continue
        for o in out:
            if type(o) is Decision:
                last_weights = o.weights
        n += 1
        last_ts = ev.ts
        if n % SAMPLE == 0:
            px = m.last_price
            for i, ex in enumerate(exs):
                eq = ex.equity(px)
                curves[i].append((last_ts, eq - start[i].equity))
                if n % BLOCK == 0:
                    blocks[i].append(eq - block_start[i])
                    block_start[i] = eq
            if last_weights is not None:
                weights_path.append((last_ts, last_weights))
            if progress is not None:
                progress(SAMPLE)
    if progress is not None and n % SAMPLE:
        progress(n % SAMPLE)
    px = m.last_price
    result: dict[str, LaneDay] = {}
    for i, (lane, ex) in enumerate(zip(lanes, exs)):
        s = start[i]
        eq = ex.equity(px)
        if n % SAMPLE or not curves[i]:
            curves[i].append((last_ts, eq - s.equity))
        if n % BLOCK or not blocks[i]:
            blocks[i].append(eq - block_start[i])
        result[lane.name] = LaneDay(
            net=eq - s.equity, fees=ex.fees - s.fees, slippage=ex.slippage - s.slippage,
            round_trips=ex.round_trips - s.round_trips, wins=ex.wins - s.wins, turnover=ex.turnover - s.turnover,
            end_position=ex.qty, curve=curves[i], blocks=blocks[i])
    if last_weights is not None and (not weights_path or weights_path[-1][0] != last_ts):
        weights_path.append((last_ts, last_weights))
    counts = {k: v - counts0.get(k, 0) for k, v in d.counts.items()}
    return DayResult(
        ticker=dt.ticker, day=dt.day, trades=n, books=books, first_ts=dt.first_ts, last_ts=last_ts, last_price=px,
        sources=list(dt.sources), duplicates=dt.duplicates, lanes=result, updates_start=updates_start,
        updates_end=d.learner.updates, weights_end=dict(d.learner.snapshot()["global"]), weights_path=weights_path,
        counts=counts)


def describe_lanes(cfg: Config) -> dict[str, Any]:
    """What each lane is, for the report."""
    out = {MAIN: "the coordinator: the learner's weights (walk-forward)"}
    for name in baseline_policies(cfg):
        out[name] = {"flat": "never trades", "equal": "equal weight on every specialist speaking"}.get(
            name, f"{name.removeprefix('only_')} alone, following its own signal at its own horizon")
    return out
