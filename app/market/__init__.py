"""The planted-signal market: a pure-Python, deterministic generator of B3-like trades and books in which we decide
what predicts the next move (scenarios.py: null | planted | mixed | reversed | latent; generator.py; draws.py).
planted/mixed plant one specialist's pattern per regime, reversed plants it the wrong way round (to be faded), latent
plants nothing on the patterns but lets an informed trader's flow leave partial footprints ahead of its moves."""
from app.market.generator import Episode, PlantedMarket
from app.market.scenarios import SCENARIOS, LatentParams, ScenarioParams

__all__ = ["Episode", "LatentParams", "PlantedMarket", "SCENARIOS", "ScenarioParams"]
