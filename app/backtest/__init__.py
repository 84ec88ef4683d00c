"""Backtest on recorded tapes: tapes -> days (days.py) -> walk-forward run (runner.py) -> figures (metrics.py) ->
tables (table.py) and charts (report.py). The command is app/commands/backtest.py."""
