"""Research at scale: walk-forward parameter sweeps over recorded tapes (`python -m app sweep`)."""
