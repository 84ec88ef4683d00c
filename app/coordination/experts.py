"""Expert names, the one contract the learner, Decisions, Rewards, reports and tests share.

"<agent>@<h>" follows specialist <agent>'s signal for h trades; "<agent>@<h>:fade" votes against it; "flat" never
trades. Specialist names are lower-case identifiers (app/agents/registry.py), so the split below is unambiguous.
"""
from __future__ import annotations

FADE = ":fade"


def expert_name(agent: str, horizon: int, fade: bool = False) -> str:
    return f"{agent}@{horizon}{FADE if fade else ''}"


def agent_of(expert: str) -> str:
    """'orderflow@60:fade' -> 'orderflow' ('flat' -> 'flat')."""
    return expert.split("@", 1)[0]


def is_fade(expert: str) -> bool:
    return expert.endswith(FADE)


def side_weight(weights: dict[str, float], agent: str, fade: bool = False) -> float:
    """Total weight on following (or fading) one specialist, over all its horizons."""
    return sum(w for e, w in weights.items() if agent_of(e) == agent and is_fade(e) == fade and e != "flat")


def by_agent(weights: dict[str, float]) -> dict[str, float]:
    """Weights summed per specialist and side: {'orderflow': .., 'orderflow:fade': .., 'flat': ..}."""
    out: dict[str, float] = {}
    for e, w in weights.items():
        key = agent_of(e) + (FADE if is_fade(e) else "")
        out[key] = out.get(key, 0.0) + w
    return out
