"""The backtest summary as tables: plain text for the terminal and markdown for report.md, from the same cells so
the two always show the same figures."""
from __future__ import annotations

from typing import Any

from app.backtest.metrics import top_weights

HEAD = ["lane", "net R$", "gross R$", "fees R$", "slippage R$", "round trips", "hit rate", "turnover", "max DD R$",
        "Sharpe/day", "Sharpe/1k (t)"]
DAY_HEAD = HEAD[:9]
NOTES = [
    "net = gross - fees; slippage = what fills paid against the mid at the order (already inside gross and net)",
    "open positions are marked to the last trade at day end (the next day starts from that mark; the risk gate "
    "handles the rest)",
    "every lane trades the same signals with the same fees, fill rules and risk limits; "
    "walk-forward: each decision uses only the past",
    "several tapes of one ticker and day are merged by exchange time; exact duplicates (same ts, price, qty, "
    "aggressor, buyer, seller and rank among identical prints of their file) are dropped",
]


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.2f}"


def _ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def _cells(label: str, r: dict[str, Any], full: bool) -> list[str]:
    row = [label, _money(r["net"]), _money(r["gross"]), _money(r["fees"]), _money(r["slippage"]),
           f"{r['round_trips']:,}", _pct(r["hit_rate"]), f"{r['turnover']:,}", _money(r["max_dd"])]
    if full:
        t = r.get("t_block")
        row += [_ratio(r.get("sharpe_days")),
                "n/a" if r.get("sharpe_block") is None else f"{r['sharpe_block']:.3f} ({t:.1f})"]
    return row


def _hindsight(summary: dict[str, Any]) -> str:
    return f"best single (hindsight): {summary['best_single']}"


def total_rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = [_cells(name, summary["totals"][name], True) for name in summary["lanes"]]
    if summary["best_single"]:
        rows.append(_cells(_hindsight(summary), summary["best_single_total"], True))
    return rows


def day_rows(summary: dict[str, Any], day: dict[str, Any]) -> list[list[str]]:
    rows = [_cells(name, day["lanes"][name], False) for name in summary["lanes"]]
    best = summary["best_single"]
    if best:
        rows.append(_cells(_hindsight(summary), day["lanes"][best], False))
    return rows


def weight_lines(day: dict[str, Any]) -> list[str]:
    out = []
    for ticker, t in day["tickers"].items():
        tops = ", ".join(f"{name} {w:.2f}" for name, w in top_weights(t["weights"]))
        u0, u1 = t["learner_updates"]
        out.append(f"{ticker}: {t['trades']:,} trades; coordinator weights at day end: {tops} "
                   f"(learner updates {u0:,} -> {u1:,})")
    return out


def header_lines(summary: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    days = summary["days"]
    span = f"{days[0]['day']} .. {days[-1]['day']}" if days else "no days"
    lines = [f"backtest: {len(meta['tapes'])} tape(s), {', '.join(summary['tickers'])}, {len(days)} day(s) ({span}), "
             f"{summary['trades']:,} trades; mode: {meta['mode']}"]
    merged = [(d["day"], t, v["duplicates_dropped"]) for d in days for t, v in d["tickers"].items()
              if len(v["sources"]) > 1]
    if merged:
        dropped = sum(n for _, _, n in merged)
        lines.append(f"merged overlapping tapes on {len(merged)} ticker-day(s); {dropped:,} duplicate trades dropped")
    if meta.get("skipped_tapes"):
        lines.append(f"{len(meta['skipped_tapes'])} tape(s) could not be read: {meta['skipped_tapes'][0]}")
    return lines


def _plain(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells))

    return [line(head), "-" * len(line(head)), *(line(r) for r in rows)]


def _markdown(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def render_text(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = header_lines(summary, meta) + [""]
    lines += ["total"] + _plain(HEAD, total_rows(summary))
    for day in summary["days"]:
        lines += ["", f"{day['day']} ({day['trades']:,} trades)"] + _plain(DAY_HEAD, day_rows(summary, day))
        lines += ["  " + w for w in weight_lines(day)]
    lines += [""] + [f"note: {n}" for n in NOTES]
    return "\n".join(lines)


def render_markdown(summary: dict[str, Any], meta: dict[str, Any], images: list[str]) -> str:
    lines = ["# Backtest", ""] + header_lines(summary, meta) + ["", "Tapes:", ""]
    lines += [f"- `{t}`" for t in meta["tapes"]]
    lines += ["", "## Total", ""] + _markdown(HEAD, total_rows(summary))
    for day in summary["days"]:
        lines += ["", f"## {day['day']} ({day['trades']:,} trades)", ""] + _markdown(DAY_HEAD, day_rows(summary, day))
        lines += [""] + ["- " + w for w in weight_lines(day)]
    lines += ["", "## Charts", ""] + [f"![{name}]({name})" for name in images]
    lines += ["", "## Notes", ""] + [f"- {n}" for n in NOTES] + [""]
    return "\n".join(lines)
