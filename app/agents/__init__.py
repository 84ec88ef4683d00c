"""The four built-in specialists (one module each), what they share (base) and how they are found (registry)."""
from app.agents.base import BaseSpecialist, MarketState, Ring, Specialist
from app.agents.footprint import Footprint
from app.agents.liquidity import Liquidity
from app.agents.orderflow import OrderFlow
from app.agents.registry import BUILTIN as SPECIALISTS
from app.agents.tape import Tape

__all__ = ["SPECIALISTS", "BaseSpecialist", "MarketState", "Ring", "Specialist", "OrderFlow", "Liquidity", "Tape",
           "Footprint"]
