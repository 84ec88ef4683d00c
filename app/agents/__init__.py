"""The four specialists (one module each) and what they share (base)."""
from app.agents.base import MarketState, Ring, Specialist
from app.agents.footprint import Footprint
from app.agents.liquidity import Liquidity
from app.agents.orderflow import OrderFlow
from app.agents.tape import Tape

SPECIALISTS = {"orderflow": OrderFlow, "liquidity": Liquidity, "tape": Tape, "footprint": Footprint}

__all__ = ["SPECIALISTS", "MarketState", "Ring", "Specialist", "OrderFlow", "Liquidity", "Tape", "Footprint"]
