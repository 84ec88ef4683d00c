from pathlib import Path

import pytest

from tests.backtest.make import write_tape

DAYS = [("WDOZ26", "23/11/2026", 3000, 11), ("WDOZ26", "24/11/2026", 3000, 12), ("WDOZ26", "25/11/2026", 3000, 13)]


@pytest.fixture
def tapes(tmp_path: Path) -> Path:
    """Two Profit exports: WDO over three days in one file (newest first), WIN on the first day in another."""
    d = tmp_path / "tapes"
    d.mkdir()
    write_tape(d / "wdo.csv", DAYS)
    write_tape(d / "win.csv", [("WINZ26", "23/11/2026", 3000, 21)])
    return d
