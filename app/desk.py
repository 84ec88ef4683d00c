"""One ticker's desk in the hierarchy: its market state, specialists, regime classifier, learner, coordinator and
lanes, and the tables built once per desk that the per-trade path (app/hierarchy.py) reads.

A lane is one way of turning the same signals into positions: the main lane uses the learner's weights and emits
events; eval adds silent shadow lanes with fixed weights, so every strategy sees the same signals, fills and costs.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Callable

from app.agents.base import BaseSpecialist, MarketState, root_of
from app.agents.registry import build
from app.config import Config
from app.coordination.coordinator import ActiveSignals, Coordinator
from app.coordination.experts import agent_of, expert_name
from app.coordination.learner import FLAT, Learner
from app.coordination.policies import LearnedPolicy, Policy
from app.coordination.regime import RegimeClassifier
from app.execution.contracts import ContractSpec
from app.execution.paper import PaperExecutor
from app.execution.risk import RiskGate

# (ticker, its contract) -> the executor of the coordinator's lane when orders are routed live (app.execution.live)
LiveFactory = Callable[[str, ContractSpec], PaperExecutor]

_DEFAULT_TICK = {"WDO": 0.5, "DOL": 0.5, "WIN": 5.0, "IND": 5.0}


class Lane:
    """One strategy on one ticker: weights -> target -> risk -> paper fills."""

    __slots__ = ("name", "policy", "executor", "risk", "target", "blend", "decisions", "emit")

    def __init__(self, name: str, policy: Policy, executor: PaperExecutor | None, risk: RiskGate, emit: bool) -> None:
        self.name = name
        self.policy = policy
        self.executor = executor
        self.risk = risk
        self.target = 0
        self.blend = 0.0
        self.decisions = 0
        self.emit = emit


class Desk:
    """Everything the hierarchy keeps for one ticker."""

    def __init__(self, ticker: str, cfg: Config, spec: ContractSpec | None, shadows: dict[str, Policy],
                 live: LiveFactory | None = None) -> None:
        self.ticker = ticker
        self.spec = spec
        tick = spec.tick if spec else _DEFAULT_TICK.get(root_of(ticker), 0.01)
        self.market = MarketState(ticker, tick, cfg.execution.min_spread_ticks)
        acfg = cfg.agents
        self.specialists = [build(entry, self.market, acfg) for entry in acfg.enabled]
        self.book_listeners = [s for s in self.specialists if type(s).on_book is not BaseSpecialist.on_book]
        # the expert pool: each specialist followed and (contrarian) faded, at each multiple of its horizon
        coord = cfg.coordination
        self.experts: list[str] = []
        self.horizons: list[int] = []  # per expert (flat excluded)
        self.sign: list[float] = []  # +1 follow, -1 fade
        self.of_agent: dict[str, list[int]] = {}  # specialist name -> its expert indices
        self.follow: dict[str, int] = {}  # specialist name -> "<name>@<own horizon>"
        self.fade: dict[str, int] = {}  # specialist name -> "<name>@<own horizon>:fade"
        for s in self.specialists:
            idx = self.of_agent[s.name] = []
            for m in coord.horizons:
                for sign in ((1.0, -1.0) if coord.contrarian else (1.0,)):
                    i = len(self.experts)
                    self.experts.append(expert_name(s.name, s.horizon * m, fade=sign < 0))
                    self.horizons.append(s.horizon * m)
                    self.sign.append(sign)
                    idx.append(i)
                    if m == 1:
                        (self.follow if sign > 0 else self.fade)[s.name] = i
        self.experts.append(FLAT)
        self.index = {name: i for i, name in enumerate(self.experts)}
        self.max_h = max(self.horizons) if self.horizons else 1
        self.regime = RegimeClassifier(self.market, cfg.coordination.regime)
        slip = cfg.execution.slippage_ticks
        self.slip_cost = 2.0 * slip * (spec.tick_value if spec else 0.0)
        self.fee_rt = 2.0 * spec.fee if spec else 0.0
        self.pv = spec.point_value if spec else 0.0
        scale = spec.round_trip_cost(slippage_ticks=slip) if spec else 1.0
        self.learner = Learner(self.experts, cfg.coordination.learner, scale)
        self.coordinator = Coordinator(self.experts, cfg.coordination)
        self.active = ActiveSignals(len(self.horizons))
        # mid and spread after trade n at [n % len]: what the expert scored at trade n reads
        self.mids = [0.0] * (self.max_h + 2)
        self.spreads = [0.0] * (self.max_h + 2)
        self.day_span = (0, 0)  # session_span(market.day): trades inside it skip session_day
        # signals wait here until their experts' horizon has passed, one queue per horizon, so each expert is
        # scored (and the learner updated) as soon as its own outcome is known
        # the learner sees P&L per unit of its horizon's noise: a move over m times the horizon has ~sqrt(m) times
        # the spread, and unscaled it would dominate the shared learning rate and slow learning for every expert
        base = {s.name: s.horizon for s in self.specialists}
        self.norm = [math.sqrt(base[agent_of(e)] / h) for e, h in zip(self.experts, self.horizons)]
        self.group_h = sorted(set(self.horizons))
        self.group_of = [self.group_h.index(h) for h in self.horizons]
        self.pending: list[deque[tuple]] = [deque() for _ in self.group_h]
        # a signal's fan-out, built once: per specialist, per horizon group in group order, (pending queue, horizon,
        # its expert indices in index order, their signs)
        self.fan: dict[str, tuple] = {name: tuple(
            (self.pending[g], h, tuple(i for i in idx if self.group_of[i] == g),
             tuple(self.sign[i] for i in idx if self.group_of[i] == g))
            for g, h in enumerate(self.group_h) if any(self.group_of[i] == g for i in idx))
            for name, idx in self.of_agent.items()}

        def lane(name: str, policy: Policy, emit: bool, ex: PaperExecutor | None = None) -> Lane:
            if ex is None and spec:
                ex = PaperExecutor(ticker, spec, slip)
            return Lane(name, policy, ex, RiskGate(cfg.risk), emit)

        # live: the coordinator's lane routes real orders; the baselines beside it stay on paper
        self.main = lane("coordinator", LearnedPolicy(), True, live(ticker, spec) if live and spec else None)
        self.lanes = [self.main] + [lane(name, p, False) for name, p in shadows.items()]
        self.counts = {"trades": 0, "books": 0, "signals": 0, "decisions": 0, "orders": 0, "fills": 0,
                       "rewards": 0, "breaches": 0}
