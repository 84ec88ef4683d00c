"""`--report DIR`: equity curves per lane (equity.png), the coordinator's weights over time (weights.png) and
report.md with the same tables as the terminal. Charts use matplotlib's Agg backend (no display needed); the x axis
is the sample index in exchange-time order (every runner.SAMPLE trades), with day boundaries marked, so nights and
weekends take no room."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from app.coordination.experts import by_agent
from app.backtest.metrics import day_label, total_curve
from app.backtest.runner import MAIN, SAMPLE, DayResult
from app.backtest.table import render_markdown


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _day_marks(ax: Any, results: list[DayResult], curve: list[tuple[int, float]]) -> None:
    starts = sorted({r.first_ts for r in results})
    i = 0
    for ts in starts[1:]:
        while i < len(curve) and curve[i][0] < ts:
            i += 1
        ax.axvline(i, color="0.55", lw=0.9, ls="--", zorder=0)


def equity_chart(results: list[DayResult], lanes: list[str], best: str | None, path: Path) -> None:
    plt = _plt()
    tickers = sorted({r.ticker for r in results})
    panels: list[tuple[str, list[DayResult]]] = [("all tickers", results)]
    if len(tickers) > 1:
        panels += [(t, [r for r in results if r.ticker == t]) for t in tickers]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels) + 0.6), squeeze=False)
    for ax, (title, rs) in zip(axes[:, 0], panels):
        for name in lanes:
            curve = total_curve(rs, name)
            label = f"{name} (best single, hindsight)" if name == best else name
            ax.plot(range(len(curve)), [v for _, v in curve], label=label,
                    lw=2.0 if name == MAIN else 1.0, color="black" if name == MAIN else None)
        _day_marks(ax, rs, total_curve(rs, MAIN))
        ax.set_title(f"net P&L, {title} (R$, marked to the last trade)")
        ax.set_xlabel(f"sample (every {SAMPLE} trades; dashed lines: day starts)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _binned(path: list[tuple[int, dict[str, float]]], experts: list[str],
            bins: int) -> tuple[list[int], list[list[float]]]:
    """Mean weight per expert over consecutive bins of the samples (a decision-by-decision line is unreadable)."""
    size = max(1, -(-len(path) // bins))
    xs: list[int] = []
    ys: list[list[float]] = [[] for _ in experts]
    for k in range(0, len(path), size):
        chunk = path[k:k + size]
        xs.append(k)
        for j, e in enumerate(experts):
            ys[j].append(sum(w.get(e, 0.0) for _, w in chunk) / len(chunk))
    return xs, ys


def weights_chart(results: list[DayResult], path: Path, bins: int = 300) -> None:
    plt = _plt()
    tickers = sorted({r.ticker for r in results})
    fig, axes = plt.subplots(len(tickers), 1, figsize=(11, 3.2 * len(tickers) + 0.6), squeeze=False)
    for ax, ticker in zip(axes[:, 0], tickers):
        rs = sorted((r for r in results if r.ticker == ticker), key=lambda r: r.day)
        # per specialist and side (its horizons summed): 17 bands would not be readable
        path_w = [(ts, by_agent(w)) for r in rs for ts, w in r.weights_path]
        experts = sorted({e for _, w in path_w for e in w})
        if path_w:
            xs, ys = _binned(path_w, experts, bins)
            ax.stackplot(xs, ys, labels=experts, alpha=0.85)
        i = 0
        for k, r in enumerate(rs):
            while i < len(path_w) and path_w[i][0] < r.first_ts:
                i += 1
            if k:
                ax.axvline(i, color="white", lw=1.2)
            ax.text(i, 1.0, " " + day_label(r.day), fontsize=7, va="bottom", color="0.3")
        ax.set_ylim(0, 1.0)
        ax.set_xlim(0, max(1, len(path_w) - 1))
        ax.set_title(f"{ticker}: coordinator weights (its Decisions, every {SAMPLE} trades, averaged over "
                     f"{max(1, -(-len(path_w) // bins)) * SAMPLE:,}-trade bins)", pad=14)
        ax.set_xlabel(f"sample (every {SAMPLE} trades; white lines: day starts)")
        ax.legend(fontsize=7, ncol=min(len(experts), 5) or 1, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(directory: str | Path, results: list[DayResult], summary: dict[str, Any],
                 meta: dict[str, Any]) -> list[Path]:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    equity = out / "equity.png"
    weights = out / "weights.png"
    equity_chart(results, summary["lanes"], summary["best_single"], equity)
    weights_chart(results, weights)
    md = out / "report.md"
    md.write_text(render_markdown(summary, meta, [equity.name, weights.name]), encoding="utf-8")
    return [equity, weights, md]
