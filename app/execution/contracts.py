"""B3 contract specifications and costs, from config ([execution.contracts.ROOT]; config.toml names the sources)."""
from __future__ import annotations

from dataclasses import dataclass

from app.agents.base import root_of
from app.config import ConfigError, ExecutionConfig


class MissingContractError(ConfigError):
    """A ticker whose root has no [execution.contracts.ROOT] section; the message says what to add."""


@dataclass(frozen=True, slots=True)
class ContractSpec:
    root: str
    tick: float  # points
    point_value: float  # R$ per point per contract
    fee: float  # R$ per contract per side

    @property
    def tick_value(self) -> float:
        return self.tick * self.point_value

    def round_trip_cost(self, spread: float | None = None, slippage_ticks: float = 0.0) -> float:
        """R$ per contract to open and close with market orders: the spread (default one tick), fees both sides,
        slippage both sides."""
        s = self.tick if spread is None else spread
        return s * self.point_value + 2.0 * self.fee + 2.0 * slippage_ticks * self.tick_value


def spec_for(ticker: str, cfg: ExecutionConfig) -> ContractSpec | None:
    """The spec of a ticker by its root (WDOZ26 -> WDO), or None when config has none (signals only)."""
    root = root_of(ticker)
    c = cfg.contracts.get(root)
    if c is None:
        return None
    return ContractSpec(root=root, tick=c.tick, point_value=c.point_value, fee=c.fee)


def require_spec(ticker: str, cfg: ExecutionConfig) -> ContractSpec:
    """The spec of a ticker that must have one (a backtest needs fills and costs for every ticker of its tape)."""
    spec = spec_for(ticker, cfg)
    if spec is None:
        root = root_of(ticker)
        raise MissingContractError(f"tape ticker {ticker}: no contract for root {root!r}; add "
                                   f"[execution.contracts.{root}] with tick, point_value and fee to config.toml")
    return spec
