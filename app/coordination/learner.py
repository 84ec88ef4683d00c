"""Whom to trust: full-information online learning over the specialists (plus "flat", who never trades).

Every time specialists signal, each of them is scored later by its counterfactual P&L at its own horizon, net of B3
costs, whether or not the coordinator followed it; "flat" scores 0. The learner is Hedge with:
- sleeping experts: only the specialists that signalled on a step (and flat) are updated on it; the others keep
  their weight. The update preserves the total weight of the awake experts (Freund et al. 1997, "specialists"), so
  an expert is judged only against the experts that were awake with it;
- regime copies: each expert has a global copy and one copy per regime label (`regime_experts`). On a step both
  copies of an awake expert are awake; the weight used in regime r is the sum of the global and the r copy. The
  global copy learns from every step, the regime copy only from steps in r, so a regime can depart from the global
  view once it has evidence;
- AdaHedge learning rate: eta = ln(N) / Delta, Delta the (discounted) cumulative mixability gap (de Rooij et al.
  2014). Scale-free, so rewards stay in R$. Discounting keeps eta from shrinking forever, so it keeps tracking;
- Fixed-Share: after each update a fraction `fixed_share` of the awake mass is spread evenly over the awake copies,
  so an expert that was bad in the last regime can recover quickly in the next one;
- a weight floor applied to the weights handed to the coordinator.
Nothing random; the same rewards in the same order give the same weights, bit for bit.
"""
from __future__ import annotations

import math
from collections import deque
from typing import Any

from app.config import LearnerConfig

FLAT = "flat"


def _scaled(w: float, log_factor: float) -> float:
    """w * exp(log_factor) without overflow for tiny w and a large factor."""
    if w <= 0.0:
        return 0.0
    x = math.log(w) + log_factor
    return math.exp(x) if x > -745.0 else 0.0


class Learner:
    def __init__(self, experts: list[str], cfg: LearnerConfig, scale: float, with_flat: bool = True) -> None:
        """experts: names; "flat" is appended unless present or with_flat is False (plain Hedge, for tests).
        scale: a typical |reward| in R$ (one round-trip cost), the prior for AdaHedge's gap so the first steps
        neither freeze nor follow the leader blindly."""
        if with_flat and FLAT not in experts:
            experts = [*experts, FLAT]
        self.experts = list(experts)
        self.n = len(self.experts)
        self.flat = self.experts.index(FLAT) if FLAT in self.experts else -1
        self.cfg = cfg
        self.log_n = math.log(self.n)
        self.scale = scale
        self.gap = scale * self.log_n
        self.g = [1.0 / self.n] * self.n
        self.r: dict[str, list[float]] = {}
        self.updates = 0
        self.cum_reward = [0.0] * self.n  # on the steps each expert was awake
        self.awake_steps = [0] * self.n
        self.hedge_loss = 0.0  # sum of the mixture's expected loss, for regret accounting
        self.cum_loss = [0.0] * self.n  # per expert, on its awake steps
        self.history: deque = deque(maxlen=cfg.history) if cfg.history else deque(maxlen=1)

    @property
    def eta(self) -> float:
        return self.log_n / self.gap if self.gap > 0 else math.inf

    def _copies(self, regime: str) -> list[float] | None:
        if not self.cfg.regime_experts:
            return None
        w = self.r.get(regime)
        if w is None:
            # a regime seen for the first time starts from what is known globally, not from ignorance: a uniform
            # copy would halve the leader's weight at every new label (the time-of-day bucket changes every day)
            tot = sum(self.g)
            w = self.r[regime] = [x / tot for x in self.g]
        return w

    def raw(self, regime: str) -> list[float]:
        """Unfloored combined weights of every expert in a regime, normalised to sum 1."""
        g = self.g
        r = self.r.get(regime) if self.cfg.regime_experts else None
        v = [g[i] + r[i] for i in range(self.n)] if r is not None else list(g)
        tot = sum(v)
        return [x / tot for x in v]

    def weights(self, regime: str) -> list[float]:
        """The weights the coordinator uses in a regime: normalised, every expert at least `floor`."""
        p = self.raw(regime)
        floor = self.cfg.floor
        if floor <= 0:
            return p
        low = [i for i, x in enumerate(p) if x < floor]
        if not low:
            return p
        # raise the low ones to the floor and scale the rest down so the sum stays 1
        rest = sum(x for x in p if x >= floor)
        room = 1.0 - floor * len(low)
        return [floor if x < floor else x * room / rest for x in p]

    def update(self, regime: str, rewards: dict[int, float], trade_id: int = 0) -> None:
        """One scored step: rewards[i] in R$ for each awake expert index (flat is added with 0 if absent)."""
        if self.flat >= 0 and self.flat not in rewards:
            rewards = {**rewards, self.flat: 0.0}
        idx = sorted(rewards)
        g = self.g
        r = self._copies(regime)
        w = [g[i] + (r[i] if r is not None else 0.0) for i in idx]
        mass = sum(w)
        loss = [-rewards[i] for i in idx]
        hedge = sum(wi * li for wi, li in zip(w, loss)) / mass
        eta = self.eta
        # log domain throughout: weights may be tiny and eta large (AdaHedge starts close to follow-the-leader)
        log_mass = math.log(mass)
        a = [math.log(wi) - log_mass - eta * li if wi > 0.0 else -math.inf for wi, li in zip(w, loss)]
        amax = max(a)
        log_z = amax + math.log(sum(math.exp(x - amax) for x in a))  # ln sum q_i exp(-eta l_i)
        mix = -log_z / eta
        delta = hedge - mix
        if delta < 0.0:  # rounding
            delta = 0.0

        # Hedge step on the awake copies; dividing by Z keeps their total mass (sleeping experts)
        alpha = self.cfg.fixed_share
        copies = 2 if r is not None else 1
        share = alpha * mass / (copies * len(idx))
        keep = 1.0 - alpha
        for j, i in enumerate(idx):
            step = -eta * loss[j] - log_z
            g[i] = keep * _scaled(g[i], step) + share
            if r is not None:
                r[i] = keep * _scaled(r[i], step) + share
            self.cum_reward[i] += rewards[i]
            self.cum_loss[i] += loss[j]
            self.awake_steps[i] += 1
        if not self.updates & 1023:
            self._renormalise(g)
        self.hedge_loss += hedge
        self.gap = self.cfg.discount * self.gap + delta
        if self.gap < 1e-12 * self.scale:
            self.gap = 1e-12 * self.scale
        self.updates += 1
        if self.cfg.history:
            self.history.append((trade_id, regime, eta, tuple(self.weights(regime))))

    def _renormalise(self, g: list[float]) -> None:
        """The total over all copies is conserved by every update (only awake mass moves, and it is preserved), so
        this only guards against float drift over a very long life; all copies scale together."""
        tot = sum(g) + sum(sum(v) for v in self.r.values())
        if tot < 1e-100 or tot > 1e100:
            for w in (g, *self.r.values()):
                for i in range(self.n):
                    w[i] /= tot

    def regret(self) -> list[float]:
        """Mixture loss minus each expert's loss (meaningful when all experts were awake on every step)."""
        return [self.hedge_loss - c for c in self.cum_loss]

    def snapshot(self) -> dict[str, Any]:
        regimes = {name: dict(zip(self.experts, self.weights(name))) for name in sorted(self.r)}
        return {
            "eta": self.eta,
            "updates": self.updates,
            "global": dict(zip(self.experts, self._norm(self.g))),
            "regimes": regimes,
            "cum_reward": dict(zip(self.experts, self.cum_reward)),
            "awake_steps": dict(zip(self.experts, self.awake_steps)),
        }

    @staticmethod
    def _norm(w: list[float]) -> list[float]:
        t = sum(w)
        return [x / t for x in w]

    def state(self) -> dict[str, Any]:
        return {
            "experts": list(self.experts),
            "g": list(self.g),
            "r": {k: list(v) for k, v in self.r.items()},
            "gap": self.gap,
            "updates": self.updates,
            "cum_reward": list(self.cum_reward),
            "awake_steps": list(self.awake_steps),
            "hedge_loss": self.hedge_loss,
            "cum_loss": list(self.cum_loss),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Load a saved state; experts are matched by name (new experts start at the mean weight)."""
        names = state["experts"]
        pos = {name: j for j, name in enumerate(names)}

        def align(vec: list[float], fill: float) -> list[float]:
            return [float(vec[pos[e]]) if e in pos else fill for e in self.experts]

        g = [float(x) for x in state["g"]]
        self.g = align(g, sum(g) / len(g))
        self.r = {}
        for k, v in state.get("r", {}).items():
            v = [float(x) for x in v]
            self.r[k] = align(v, sum(v) / len(v))
        self.gap = float(state.get("gap", self.gap))
        self.updates = int(state.get("updates", 0))
        self.cum_reward = align(state.get("cum_reward", [0.0] * len(names)), 0.0)
        self.awake_steps = [int(x) for x in align(state.get("awake_steps", [0] * len(names)), 0)]
        self.hedge_loss = float(state.get("hedge_loss", 0.0))
        self.cum_loss = align(state.get("cum_loss", [0.0] * len(names)), 0.0)
