"""What the backtest borrows from the rest of the code base, behind one module:

- tape reading: app.feed.replay.tapes (expand_paths, load_tape, parse_columns, Tape, TapeError, NoTradesRead);
- the contract check: app.execution.contracts.require_spec (a ConfigError naming the config section to add);
- the baseline lanes: app.coordination.policies.baseline_policies (flat, equal weight, each specialist alone).
"""
from __future__ import annotations

from app.execution.contracts import require_spec
from app.feed.replay.tapes import NoTradesRead, Tape, TapeError, expand_paths, load_tape, parse_columns
from app.coordination.policies import baseline_policies

__all__ = ["NoTradesRead", "Tape", "TapeError", "expand_paths", "load_tape", "parse_columns", "baseline_policies",
           "require_spec"]
