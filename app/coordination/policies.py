"""Where a lane's weights come from: the learner (the coordinator), or a fixed rule (the baselines it is judged by).

Every policy returns one weight per expert of the desk (`desk.experts`: "<agent>@<h>", "<agent>@<h>:fade", ...,
"flat" last). The baselines follow each specialist's own signal at its own horizon ("<agent>@<h0>", the desk's
`follow[agent]`), so "equal weight" and "<agent> alone" mean what a reader expects whatever the expert pool is.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

from app.agents.registry import resolve
from app.coordination.learner import FLAT

if TYPE_CHECKING:
    from app.events import Trade
    from app.desk import Desk


class Policy(Protocol):
    def weights(self, desk: "Desk", regime: str, t: "Trade") -> list[float]: ...


class LearnedPolicy:
    """The coordinator: the learner's weights in the current regime."""

    def weights(self, desk: "Desk", regime: str, t: "Trade") -> list[float]:
        return desk.learner.weights(regime)


class FixedPolicy:
    """Fixed weights by expert name (missing = 0); {"flat": 1} never trades."""

    def __init__(self, by_name: dict[str, float]) -> None:
        self.by_name = by_name
        self._cache: dict[tuple[str, ...], list[float]] = {}

    def weights(self, desk: "Desk", regime: str, t: "Trade") -> list[float]:
        key = tuple(desk.experts)
        w = self._cache.get(key)
        if w is None:
            w = self._cache[key] = [float(self.by_name.get(e, 0.0)) for e in desk.experts]
        return w


class AlonePolicy:
    """One specialist alone: weight 1 on following its own signal at its own horizon."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self._w: list[float] | None = None

    def weights(self, desk: "Desk", regime: str, t: "Trade") -> list[float]:
        if self._w is None or len(self._w) != len(desk.experts):
            self._w = [0.0] * len(desk.experts)
            self._w[desk.follow[self.agent]] = 1.0
        return self._w


class EqualPolicy:
    """Equal weight on every specialist that has an active signal: the plain mean of what is being said."""

    def weights(self, desk: "Desk", regime: str, t: "Trade") -> list[float]:
        values = desk.active.values
        w = [0.0] * len(desk.experts)
        for i in desk.follow.values():
            if values[i] != 0.0:
                w[i] = 1.0
        return w


class OraclePolicy:
    """Knows the planted market: follows (or fades, where the move is reversed) the informative specialist;
    `informative(ticker, trade_id)` names it (None: stay flat), `direction(ticker, trade_id)` is +1 or -1."""

    def __init__(self, informative: Callable[[str, int], str | None],
                 direction: Callable[[str, int], int] | None = None) -> None:
        self.informative = informative
        self.direction = direction or (lambda ticker, trade_id: 1)

    def weights(self, desk: "Desk", regime: str, t: "Trade") -> list[float]:
        w = [0.0] * len(desk.experts)
        name = self.informative(t.ticker, t.trade_id)
        if name is None:
            w[desk.index[FLAT]] = 1.0
            return w
        i = desk.follow[name] if self.direction(t.ticker, t.trade_id) > 0 else desk.fade.get(name)
        w[desk.index[FLAT] if i is None else i] = 1.0
        return w


def baseline_policies(cfg: Any) -> dict[str, Policy]:
    """The shadow lanes every comparison shows beside the coordinator (eval, backtest): flat, equal weight, and each
    specialist alone; they see the coordinator's signals, fees, fills and risk limits."""
    out: dict[str, Policy] = {"flat": FixedPolicy({FLAT: 1.0}), "equal": EqualPolicy()}
    for entry in cfg.agents.enabled:
        name = resolve(entry).name
        out[f"only_{name}"] = AlonePolicy(name)
    return out
