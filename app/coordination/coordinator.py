"""From the experts' active signals and a weight vector to a target position, with the reason spelled out.

An expert is a specialist's signal followed ("orderflow@15") or faded ("orderflow@15:fade") at one horizon; it
stays active for that horizon (in trades of its ticker) unless the specialist signals again. The blend is the
prediction of the sleeping-experts mixture (Freund, Schapire, Singer & Warmuth 1997): the weighted vote of the
experts that are awake, normalised over them plus "flat", who is always awake and always votes 0:

    blend = sum(w_i x s_i over active i) / (sum(w_i over active i) + w_flat)

so experts with nothing to say do not dilute the ones that speak (one trusted signal can act on its own), while the
trust put in flat still pulls every blend towards 0. A follow/fade pair at equal weight cancels: until the learner
has evidence either way, a signal moves nothing.
target = 0 while |blend| < entry_threshold, else sign(blend) x max(1, round(|blend| x max_contracts)).
"""
from __future__ import annotations

from app.config import CoordinationConfig


class ActiveSignals:
    """Per ticker: the active signal value of each specialist and when it expires."""

    __slots__ = ("values", "expiry", "next_expiry", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self.values = [0.0] * n  # direction x confidence, 0 when inactive
        self.expiry = [0] * n  # trade count at which the signal stops counting
        self.next_expiry = 1 << 62

    def add(self, i: int, value: float, now: int, horizon: int) -> None:
        self.values[i] = value
        e = now + horizon
        self.expiry[i] = e
        if e < self.next_expiry:
            self.next_expiry = e

    def expire(self, now: int) -> bool:
        """Drop signals whose horizon has passed; True if any was dropped."""
        if now < self.next_expiry:
            return False
        dropped = False
        nxt = 1 << 62
        for i in range(self.n):
            if self.values[i] != 0.0 or self.expiry[i]:
                if self.expiry[i] <= now:
                    if self.values[i] != 0.0:
                        dropped = True
                    self.values[i] = 0.0
                    self.expiry[i] = 0
                elif self.expiry[i] < nxt:
                    nxt = self.expiry[i]
        self.next_expiry = nxt
        return dropped

    def active(self) -> list[int]:
        return [i for i in range(self.n) if self.values[i] != 0.0]


class Coordinator:
    def __init__(self, experts: list[str], cfg: CoordinationConfig) -> None:
        """experts: the specialists' names followed by "flat" (the learner's order)."""
        self.experts = experts
        self.flat = experts.index("flat")
        self.threshold = cfg.entry_threshold
        self.max_contracts = cfg.max_contracts

    def blend(self, weights: list[float], active: ActiveSignals) -> float:
        num = 0.0
        den = weights[self.flat]
        values = active.values
        for i in range(active.n):
            v = values[i]
            if v != 0.0:
                w = weights[i]
                num += w * v
                den += w
        return num / den if den > 0 else 0.0

    def target(self, blend: float) -> int:
        mag = blend if blend >= 0 else -blend
        if mag < self.threshold:
            return 0
        n = int(round(mag * self.max_contracts))
        if n < 1:
            n = 1
        if n > self.max_contracts:
            n = self.max_contracts
        return n if blend > 0 else -n

    def reason(self, regime: str, weights: list[float], active: ActiveSignals, blend: float, target: int) -> str:
        parts = [f"{self.experts[i]} {active.values[i]:+.2f}x{weights[i]:.2f}" for i in active.active()]
        src = ", ".join(parts) if parts else "no active signal"
        cmp = ">=" if abs(blend) >= self.threshold else "<"
        return (f"regime {regime}: blend {blend:+.3f} of [{src}], flat {weights[self.flat]:.2f}; "
                f"|blend| {cmp} {self.threshold} -> target {target:+d}")
