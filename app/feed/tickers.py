"""B3 futures codes: a root (WDO, WIN) resolves to the contract that is liquid today (market-facts.md)."""
from __future__ import annotations

from datetime import date, timedelta

MONTH_CODES = "FGHJKMNQUVXZ"  # Jan..Dec
_EVEN_MONTHS = (2, 4, 6, 8, 10, 12)


def code(root: str, year: int, month: int) -> str:
    return f"{root}{MONTH_CODES[month - 1]}{year % 100:02d}"


def _win_expiry(year: int, month: int) -> date:
    """Wednesday closest to the 15th of an even month."""
    fifteenth = date(year, month, 15)
    offset = (2 - fifteenth.weekday()) % 7  # days to the next Wednesday
    return fifteenth + timedelta(days=offset if offset <= 3 else offset - 7)


def current_contract(root: str, today: date) -> str:
    if root in ("WDO", "DOL"):
        # expires on the first business day of its month, so during month M the liquid contract is M+1
        year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
        return code(root, year, month)
    if root in ("WIN", "IND"):
        year, month = today.year, today.month
        while True:
            if month in _EVEN_MONTHS and today <= _win_expiry(year, month):
                return code(root, year, month)
            month += 1
            if month > 12:
                year, month = year + 1, 1
    raise ValueError(f"no contract rule for root {root!r}; give a full code like {root}Z26")


ROOTS = ("WDO", "DOL", "WIN", "IND")


def resolve(tickers: list[str], today: date) -> list[str]:
    """Roots become today's contract; anything else (WDOZ26, WINFUT, PETR4) is used as given."""
    return [current_contract(t, today) if t in ROOTS else t for t in tickers]


def root_of(ticker: str) -> str:
    return ticker[:3]
