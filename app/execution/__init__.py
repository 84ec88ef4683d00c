"""Paper execution with B3 contract specs and fees, behind risk limits."""
