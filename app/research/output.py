"""The sweep's files: CSV tables, a markdown summary with a heat map, and the chosen settings as a config fragment.

Heat map: out-of-sample P&L/day over the two grid keys whose values matter most, measured as the spread (max - min)
of the OOS P&L/day averaged per value over every other key; ties go to the key name. A one-key grid gives one row.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from app.backtest.metrics import day_label
from app.research import results as R
from app.research.grid import format_value, label, to_toml


def _csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: format_value(v) if isinstance(v, (bool, list)) else v for k, v in r.items()})


def heat_axes(axes: list[tuple[str, list[Any]]], rows: list[dict[str, Any]]) -> list[str]:
    spread = []
    for key, values in axes:
        means = []
        for v in values:
            xs = [r["oos_per_day"] for r in rows if r[key] == v and r["oos_per_day"] is not None]
            if xs:
                means.append(sum(xs) / len(xs))
        spread.append((-(max(means) - min(means)) if means else 0.0, key))
    return [k for _, k in sorted(spread)[:2]]


def heat_matrix(axes: list[tuple[str, list[Any]]], rows: list[dict[str, Any]], keys: list[str]
                ) -> tuple[list[Any], list[Any], list[list[float]]]:
    vals = dict(axes)
    ys = vals[keys[0]]
    xs = vals[keys[1]] if len(keys) > 1 else [None]
    grid = []
    for y in ys:
        line = []
        for x in xs:
            cell = [r["oos_per_day"] for r in rows
                    if r[keys[0]] == y and (x is None or r[keys[1]] == x) and r["oos_per_day"] is not None]
            line.append(sum(cell) / len(cell) if cell else float("nan"))
        grid.append(line)
    return ys, xs, grid


def _heat_map(path: Path, axes: list[tuple[str, list[Any]]], rows: list[dict[str, Any]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = heat_axes(axes, rows)
    ys, xs, grid = heat_matrix(axes, rows, keys)
    fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 3, 0.6 * len(ys) + 2))
    im = ax.imshow(grid, cmap="RdYlGn", aspect="auto")
    ax.set_yticks(range(len(ys)), [format_value(y) for y in ys])
    ax.set_ylabel(keys[0])
    ax.set_xticks(range(len(xs)), [format_value(x) if x is not None else "" for x in xs])
    if len(keys) > 1:
        ax.set_xlabel(keys[1])
    for yi, line in enumerate(grid):
        for xi, v in enumerate(line):
            ax.text(xi, yi, f"{v:,.0f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label="OOS R$/day (coordinator, all tickers)")
    ax.set_title("out-of-sample P&L per day")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return keys


def write(outdir: Path, sw: R.Sweep, axes: list[tuple[str, list[Any]]], meta: dict[str, Any]) -> dict[str, str]:
    outdir.mkdir(parents=True, exist_ok=True)
    summary, steps, settings = R.summary_rows(sw), R.step_rows(sw), R.setting_rows(sw)
    _csv(outdir / "summary.csv", summary)
    _csv(outdir / "steps.csv", steps)
    _csv(outdir / "settings.csv", settings)
    keys = _heat_map(outdir / "heatmap.png", axes, settings)
    chosen = sw.settings[sw.next_choice]

    window = f"{day_label(sw.next_train[0])}..{day_label(sw.next_train[-1])}"
    (outdir / "chosen.toml").write_text(to_toml(chosen, (
        f"hmarl sweep: the setting with the best coordinator P&L over {window} (the last train window),\n"
        f"out of {len(sw.settings)}. Only the swept keys: everything else is the defaults (or merge these lines\n"
        f"into your own config.toml). Use: python -m app backtest TAPES --config chosen.toml")), encoding="utf-8")
    grid_text = "; ".join(k + " = " + ", ".join(format_value(v) for v in vs) for k, vs in axes)
    md = [
        "# Parameter sweep", "",
        f"Tapes: {', '.join(meta['tapes'])}  ",
        f"Grid: {grid_text}  ",
        f"Walk-forward: train {meta['train_days']} day(s), test {meta['test_days']} day(s), {len(sw.steps)} step(s); "
        f"{meta['mode']}", "",
        "IS = the train days a step's choice was made on; OOS = the next test days, never seen by that choice. "
        "Coordinator net R$ per day over all tickers (fees and spread paid). A row flagged OVERFIT looked best "
        "in-sample and then did worse out-of-sample than the untuned defaults (see app/research/results.py).", "",
        "## Summary", "", R.table(summary, R.SUMMARY_COLS, markdown=True), "",
        "## Steps", "", R.table(steps, R.STEP_COLS, markdown=True), "",
        "## Settings", "", R.table(settings, R.SETTING_COLS, markdown=True), "",
        f"## Out-of-sample P&L per day over {' x '.join(keys)}", "", "![heat map](heatmap.png)", "",
        f"## Chosen for trading from here: `{label(chosen)}`", "",
        f"Best over {window}; written to `chosen.toml`.", "",
    ]
    (outdir / "summary.md").write_text("\n".join(md), encoding="utf-8")
    return {"heat_map_keys": ", ".join(keys), "config_fragment": str(outdir / "chosen.toml")}
