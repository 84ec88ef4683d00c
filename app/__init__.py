"""hmarl: crash-free ProfitDLL market data and a hierarchical multi-agent trader for B3 futures.

`from app import App` for notebooks: `app = App.from_config("config.toml")`, `await app.start()`,
`app.snapshot()`, `await app.stop()`.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["App", "__version__"]


def __getattr__(name: str) -> Any:  # keep `python -m app --help` from importing the whole runtime
    if name == "App":
        from app.app import App

        return App
    raise AttributeError(name)
