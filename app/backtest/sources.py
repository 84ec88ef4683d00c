"""What the backtest borrows from the rest of the code base, behind one module:

- tape reading: app.feed.replay.tapes (expand_paths, load_tape, parse_columns, Tape, TapeError, NoTradesRead);
- the contract check: app.execution.contracts.require_spec (a ConfigError naming the config section to add);
- the baseline lanes: app.coordination.policies.baseline_policies when present, else the same dict built from the
  hierarchy's EqualPolicy / FixedPolicy (switching is deleting the fallback).
"""
from __future__ import annotations

from app.config import Config
from app.execution.contracts import require_spec
from app.feed.replay.tapes import NoTradesRead, Tape, TapeError, expand_paths, load_tape, parse_columns
from app.hierarchy import EqualPolicy, FixedPolicy, Policy

__all__ = ["NoTradesRead", "Tape", "TapeError", "expand_paths", "load_tape", "parse_columns", "baseline_policies",
           "require_spec"]


def baseline_policies(cfg: Config) -> dict[str, Policy]:
    """Shadow lanes: "equal" and "only_<agent>" per enabled specialist (expert names come from the shared
    function once it exists, since they are becoming "<agent>@<h>")."""
    try:
        from app.coordination.policies import baseline_policies as shared
    except ImportError:
        shared = None
    if shared is not None:
        return dict(shared(cfg))
    out: dict[str, Policy] = {"equal": EqualPolicy()}
    for name in cfg.agents.enabled:
        out[f"only_{name}"] = FixedPolicy({name: 1.0})
    return out
