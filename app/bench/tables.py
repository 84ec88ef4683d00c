"""What every bench table needs: a printer (rich when it is there, aligned text otherwise), number formats, goals."""
from __future__ import annotations

from typing import Any

try:  # rich is a dependency of the app; plain text keeps the bench usable without it
    from rich.console import Console
    from rich.table import Table
except ImportError:  # pragma: no cover
    Console = Table = None  # type: ignore[assignment,misc]

DISTURBED_CORES = 0.25  # other processes' CPU during a point above which its tails are flagged


def _goal(met: bool, figure: str, target: str, **values: Any) -> dict[str, Any]:
    return {"met": bool(met), "figure": figure, "target": target, **values}


class Printer:
    """rich tables when rich is there, aligned plain text otherwise."""

    def __init__(self, plain: bool = False) -> None:
        self.console = None if plain or Console is None else Console(highlight=False, width=140)

    def line(self, text: str = "") -> None:
        if self.console is not None:
            self.console.print(text, markup=False)
        else:
            print(text)

    def table(self, title: str, columns: list[str], rows: list[list[str]]) -> None:
        if self.console is not None:
            t = Table(title=title, title_justify="left")
            for i, c in enumerate(columns):
                t.add_column(c, justify="left" if i == 0 else "right")
            for r in rows:
                t.add_row(*r)
            self.console.print(t)
            return
        widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
        print(title)
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths))))
        for r in rows:
            print("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
        print()


def _n(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _runs(out: dict[str, Any]) -> str:
    return "/".join(f"{r / 1e3:,.0f}k" for r in out.get("runs", [])) or "-"


def _others(out: dict[str, Any]) -> str:
    v = out.get("others_cores")
    return "-" if v is None else f"{v:.2f}"


def _lat(lat: dict[str, Any]) -> list[str]:
    return [f"{lat['p50_us']:g}", f"{lat['p99_us']:g}", f"{lat['p999_us']:g}", f"{lat['max_us']:g}"]


def render_goals(p: Printer, goals: dict[str, Any]) -> None:
    for name, g in goals.items():
        p.line(f"goal {name}: {'MET' if g['met'] else 'NOT MET'} - {g['figure']} (target {g['target']})")
    if goals:
        p.line()
