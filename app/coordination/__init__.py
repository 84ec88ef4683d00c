"""Regime context, the online learner over specialists, and the coordinator that turns signals into a target."""
