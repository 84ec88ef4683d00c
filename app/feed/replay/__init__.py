"""Replay source: a journal written by a previous run, or a Profit "Times & Trades" CSV export."""
from app.feed.replay.feed import ReplayFeed, detect_format
from app.feed.replay.profit_csv import CsvReport, ProfitCsv, parse_profit_csv

__all__ = ["ReplayFeed", "detect_format", "CsvReport", "ProfitCsv", "parse_profit_csv"]
