"""Replay source: a journal written by a previous run, or a tape file (Profit "Times & Trades" CSV export, B3
TradeIntraday file, any CSV through a column mapping); tapes.py is the one entry point for reading tapes."""
from app.feed.replay.feed import ReplayFeed, detect_format
from app.feed.replay.profit_csv import CsvReport, ProfitCsv, parse_profit_csv
from app.feed.replay.tapes import NoTradesRead, Tape, TapeError, expand_paths, load_tape, parse_columns

__all__ = ["ReplayFeed", "detect_format", "CsvReport", "ProfitCsv", "parse_profit_csv", "NoTradesRead", "Tape",
           "TapeError", "expand_paths", "load_tape", "parse_columns"]
