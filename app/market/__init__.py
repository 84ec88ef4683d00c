"""The planted-signal market: a pure-Python, deterministic generator of B3-like trades and books in which we
decide which specialist's pattern predicts the next move (scenarios.py: null | planted | mixed; generator.py)."""
from app.market.generator import PlantedMarket
from app.market.scenarios import SCENARIOS, ScenarioParams

__all__ = ["PlantedMarket", "SCENARIOS", "ScenarioParams"]
