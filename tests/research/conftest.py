from pathlib import Path

import pytest

from tests.backtest.make import write_tape

# four WDO session days (a weekend between 20 and 23/11) and one WIN day: two tickers, two walk-forward steps
WDO = [("WDOZ26", d, 1000, 30 + k) for k, d in enumerate(["18/11/2026", "19/11/2026", "20/11/2026", "23/11/2026"])]


@pytest.fixture(scope="session")
def tapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only for the tests: one set for the session, so the reference table is computed once."""
    d = tmp_path_factory.mktemp("research") / "tapes"
    d.mkdir()
    write_tape(d / "wdo.csv", WDO)
    write_tape(d / "win.csv", [("WINZ26", "19/11/2026", 1000, 41)])
    return d
