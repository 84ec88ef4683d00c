"""Random numbers for the generator: drawn from numpy in blocks, handed out one by one as Python floats.

Per-draw numpy scalar calls would dominate the generator's time; blocks of 4096 keep it fast while every number still
comes from the stream's own Generator(PCG64), so the same seed gives the same draws in the same order.
"""
from __future__ import annotations

import numpy as np

_BLOCK = 4096


class Draws:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._u: list[float] = []
        self._n: list[float] = []
        self._e: list[float] = []
        self._iu = self._in = self._ie = 0

    def u(self) -> float:
        """Uniform in [0, 1)."""
        if self._iu >= len(self._u):
            self._u = self.rng.random(_BLOCK).tolist()
            self._iu = 0
        self._iu += 1
        return self._u[self._iu - 1]

    def normal(self) -> float:
        if self._in >= len(self._n):
            self._n = self.rng.standard_normal(_BLOCK).tolist()
            self._in = 0
        self._in += 1
        return self._n[self._in - 1]

    def exp(self) -> float:
        if self._ie >= len(self._e):
            self._e = self.rng.standard_exponential(_BLOCK).tolist()
            self._ie = 0
        self._ie += 1
        return self._e[self._ie - 1]

    def sign(self) -> int:
        return 1 if self.u() < 0.5 else -1

    def between(self, lo: float, hi: float) -> float:
        """Uniform in [lo, hi)."""
        return lo + (hi - lo) * self.u()

    def count(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi]."""
        return lo + int(self.u() * (hi - lo + 1))

    def rounded(self, x: float) -> int:
        """x rounded down or up at random so that the mean is x (x >= 0)."""
        return int(x) + (1 if self.u() < x - int(x) else 0)
