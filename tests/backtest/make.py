"""Tiny Profit "Times & Trades" CSV tapes for the backtest tests, written the way Profit writes them (no header,
`;`, decimal comma, Latin-1, newest first), from a seeded generator: a random walk on the tick grid with runs of
same-side aggression so the specialists have something to say."""
from __future__ import annotations

from pathlib import Path

import numpy as np

AGENTS = ["8 - UBS BRASIL CCTVM S/A", "3 - XP INVESTIMENTOS", "72 - BRADESCO S/A CTVM", "120 - GENIAL"]
TICK = {"WDO": 0.5, "WIN": 5.0, "DOL": 0.5, "IND": 5.0, "PET": 0.01}
START = {"WDO": 5300.0, "WIN": 128000.0, "DOL": 5300.0, "IND": 128000.0, "PET": 35.0}


def day_rows(ticker: str, date: str, n: int, seed: int) -> list[str]:
    """n trades of one day, 09:00:00 onwards, oldest first (the writer reverses them)."""
    rng = np.random.default_rng(seed)
    root = ticker[:3]
    tick = TICK[root]
    price = START[root] + tick * int(rng.integers(-40, 40))
    side = 1
    rows = []
    second = 0
    for _ in range(n):
        if rng.random() < 0.15:
            side = -side
        price += tick * side * (rng.random() < 0.3)
        second += int(rng.random() < 0.35)
        hh, rest = divmod(second, 3600)
        mm, ss = divmod(rest, 60)
        qty = int(rng.integers(1, 6)) * (5 if rng.random() < 0.05 else 1)
        b, s = rng.integers(0, len(AGENTS), 2)
        word = "Comprador" if side > 0 else "Vendedor"
        px = f"{price:.2f}".replace(".", ",")
        rows.append(f"{ticker};{date};{9 + hh:02d}:{mm:02d}:{ss:02d};{AGENTS[b]};{px};{qty};{AGENTS[s]};{word}")
    return rows


def write_tape(path: Path, days: list[tuple[str, str, int, int]]) -> Path:
    """days: (ticker, dd/mm/yyyy, trades, seed). Rows newest first, Latin-1, as Profit exports them."""
    rows: list[str] = []
    for ticker, date, n, seed in days:
        rows.extend(day_rows(ticker, date, n, seed))
    path.write_bytes(("\n".join(reversed(rows)) + "\n").encode("latin-1"))
    return path
