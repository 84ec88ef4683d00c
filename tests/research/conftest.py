from pathlib import Path

import pytest

from tests.backtest.make import write_tape

# four WDO session days (a weekend between 20 and 23/11) and one WIN day: two tickers, two walk-forward steps
WDO = [("WDOZ26", d, 1500, 30 + k) for k, d in enumerate(["18/11/2026", "19/11/2026", "20/11/2026", "23/11/2026"])]


@pytest.fixture
def tapes(tmp_path: Path) -> Path:
    d = tmp_path / "tapes"
    d.mkdir()
    write_tape(d / "wdo.csv", WDO)
    write_tape(d / "win.csv", [("WINZ26", "19/11/2026", 1500, 41)])
    return d
