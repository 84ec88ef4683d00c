"""`python -m app report [RUN]`: PNG charts and a markdown summary of one run.

The run is rebuilt from its journal with the settings and learned state it started from (kept beside the
journal), so every fill, position and weight in the charts is the one the live run produced — the report checks
that by comparing decision digests. Live-only measurements (callback -> decision latency) come from the run's
summary file. Written to <journal dir>/report/ unless --out says otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


from app import config as config_mod
from app.coordination.experts import by_agent
from app.app import initial_state_of, recorded_config, run_file
from app.cli import EXIT_FEED, EXIT_OK
from app.events import Decision, Fill, Position, Trade
from app.hierarchy import Hierarchy
from app.run_files import SUMMARY_FILE, decision_fingerprint

NAME = "report"
HELP = "write PNG charts and a markdown summary of a run (default: the latest run)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", default=None, help="run id or journal directory (default: the latest run)")
    p.add_argument("--out", default=None, help="output directory (default: <journal dir>/report)")
    p.add_argument("--max-points", type=int, default=20_000, help="points per price line (the rest is thinned)")


def find_run(cfg: config_mod.Config, run: str | None) -> Path:
    root = Path(cfg.journal.dir) if cfg.journal.dir else Path(cfg.run.data_dir) / "journal"
    if run is not None:
        p = Path(run)
        if p.is_dir():
            return p
        if (root / run).is_dir():
            return root / run
        raise FileNotFoundError(f"no run {run!r}: give a run id under {root} or a journal directory")
    runs = sorted((d for d in root.glob("*") if d.is_dir()), key=lambda d: d.stat().st_mtime) if root.is_dir() else []
    if not runs:
        raise FileNotFoundError(f"no runs under {root}: run `python -m app run` first, or pass a journal directory")
    return runs[-1]


class Rebuilt:
    """Everything the charts need, collected while the journal replays through a fresh Hierarchy."""

    def __init__(self) -> None:
        self.prices: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.fills: dict[str, list[Fill]] = defaultdict(list)
        self.positions: dict[str, list[Position]] = defaultdict(list)
        self.weights: dict[str, list[tuple[int, dict[str, float]]]] = defaultdict(list)
        self.decisions = 0
        self.digest = ""


def rebuild(run_dir: Path) -> tuple[Rebuilt, config_mod.Config]:
    import hashlib

    from app.io.journal import read_journal

    cfg = recorded_config(str(run_dir), {}) or config_mod.load(None)
    hierarchy = Hierarchy(cfg, clock=lambda: 0)
    state = initial_state_of(str(run_dir))
    if state:
        hierarchy.restore(state)
    out = Rebuilt()
    digest = hashlib.blake2b(digest_size=16)
    for ev in read_journal(run_dir):
        if type(ev) is Trade:
            out.prices[ev.ticker].append((ev.ts, ev.price))
        for o in hierarchy.on_event(ev):
            tp = type(o)
            if tp is Decision:
                out.decisions += 1
                digest.update(decision_fingerprint(o))
                out.weights[o.ticker].append((o.ts, o.weights))
            elif tp is Fill:
                out.fills[o.ticker].append(o)
            elif tp is Position:
                out.positions[o.ticker].append(o)
    out.digest = digest.hexdigest()
    return out, cfg


def _times(ts: list[int]) -> list[Any]:
    from app.feed.b3time import ns_to_local

    return [ns_to_local(t).replace(tzinfo=None) for t in ts]


def _thin(points: list[tuple[int, float]], limit: int) -> list[tuple[int, float]]:
    step = max(1, len(points) // limit)
    return points[::step]


def charts(data: Rebuilt, summary: dict[str, Any] | None, out: Path, max_points: int) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    tickers = sorted(data.prices)

    def save(fig: Any, name: str) -> None:
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    fig, axes = plt.subplots(len(tickers) or 1, 1, figsize=(11, 3.2 * max(1, len(tickers))), squeeze=False)
    for ax, t in zip(axes[:, 0], tickers):
        pts = _thin(data.prices[t], max_points)
        ax.plot(_times([p[0] for p in pts]), [p[1] for p in pts], lw=0.7, color="0.35", label="trades")
        for side, color, marker in (("buy", "tab:green", "^"), ("sell", "tab:red", "v")):
            fs = [f for f in data.fills[t] if f.side == side]
            if fs:
                ax.scatter(_times([f.ts for f in fs]), [f.price for f in fs], s=18, c=color, marker=marker,
                           label=f"{side} fills ({len(fs)})", zorder=3)
        ax.set_title(f"{t}: price and fills")
        ax.legend(loc="upper left", fontsize=8)
    save(fig, "price_fills.png")

    for name, title, value in (("position.png", "position (contracts)", lambda p: p.qty),
                               ("pnl.png", "P&L net of fees (R$)", lambda p: p.realized + p.unrealized)):
        fig, ax = plt.subplots(figsize=(11, 3.5))
        for t in tickers:
            ps = data.positions[t]
            if ps:
                ax.step(_times([p.ts for p in ps]), [value(p) for p in ps], where="post", label=t)
        ax.set_title(title)
        ax.axhline(0, color="0.6", lw=0.5)
        if any(data.positions[t] for t in tickers):
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no fills in this run", transform=ax.transAxes, ha="center")
        save(fig, name)

    fig, axes = plt.subplots(len(tickers) or 1, 1, figsize=(11, 3.2 * max(1, len(tickers))), squeeze=False)
    for ax, t in zip(axes[:, 0], tickers):
        ws = [(ts, by_agent(w)) for ts, w in data.weights[t]]  # horizons summed: one line per specialist and side
        if ws:
            agents = sorted(ws[0][1])
            x = _times([w[0] for w in ws])
            for a in agents:
                ax.plot(x, [w[1].get(a, 0.0) for w in ws], lw=1.0, label=a)
            ax.set_ylim(0, 1)
            ax.legend(fontsize=8, loc="upper left")
        ax.set_title(f"{t}: learned weight per specialist, following and fading (in the decision's regime)")
    save(fig, "weights.png")

    fig, ax = plt.subplots(figsize=(8, 3.5))
    buckets = (summary or {}).get("decision_latency_buckets") or []
    if buckets:
        lows = [b[0] / 1e3 for b in buckets]
        counts = [b[1] for b in buckets]
        ax.bar(range(len(lows)), counts, color="tab:blue")
        ticks = list(range(0, len(lows), max(1, len(lows) // 8)))
        ax.set_xticks(ticks, [f"{lows[i]:.0f}" for i in ticks])
        ax.set_xlabel("callback -> decision latency (µs, bucket lower edge)")
        ax.set_ylabel("decisions")
    else:
        ax.text(0.5, 0.5, "latency not recorded for this run (replayed input)", transform=ax.transAxes,
                ha="center")
    ax.set_title("callback -> decision latency (live run)")
    save(fig, "latency.png")
    return written


def markdown(run_dir: Path, data: Rebuilt, summary: dict[str, Any] | None, images: list[Path]) -> str:
    lines = [f"# Run {run_dir.name}", ""]
    if summary:
        lat = summary.get("callback_to_decision_us", {})
        lines += [f"- trades: {summary.get('trades')}", f"- gaps (missing or repeated trade numbers): "
                  f"{summary.get('gaps')}", f"- decisions: {summary.get('decisions')}",
                  f"- callback -> decision latency: p50 {lat.get('p50_us')} µs, p99 {lat.get('p99_us')} µs, "
                  f"p999 {lat.get('p999_us')} µs, max {lat.get('max_us')} µs"]
        same = summary.get("decision_digest") == data.digest
        lines.append(f"- rebuilt from the journal: {data.decisions} decisions, digest {data.digest} "
                     f"({'identical to the live run' if same else 'DIFFERS from the live run ' + str(summary.get('decision_digest'))})")
    else:
        lines.append(f"- rebuilt from the journal: {data.decisions} decisions (no live summary was kept: the run "
                     "did not stop cleanly)")
    lines += ["", "| ticker | fills | last position | P&L net R$ |", "|---|---|---|---|"]
    for t in sorted(data.prices):
        ps = data.positions[t]
        last = ps[-1] if ps else None
        lines.append(f"| {t} | {len(data.fills[t])} | {last.qty if last else 0} | "
                     f"{(last.realized + last.unrealized) if last else 0.0:,.2f} |")
    if summary and summary.get("live"):
        lines += [""] + live_section(summary["live"])
    lines += [""] + [f"![{p.stem}]({p.name})" for p in images]
    return "\n".join(lines) + "\n"


def live_section(live: dict[str, Any]) -> list[str]:
    """What the run's live routing did, from its summary: what a trader checks after a session."""
    lines = ["## Live routing", ""]
    if live.get("replayed_from_journal"):
        return lines + [f"- replayed from the run's routing journal: {live.get('records', 0)} records, "
                        f"{live.get('mismatches', 0)} places where the replay decided differently"
                        + (f" (first: {live['first_mismatch']})" if live.get("first_mismatch") else "")]
    lat = live.get("send_latency") or {}
    fills = live.get("fills") or {}
    lines += [f"- account {live.get('account')} (broker {live.get('broker')})",
              f"- orders sent: {live.get('sent', 0)}, refused: {live.get('refused', 0)}"
              + (f" (last: {live['last_refusal']})" if live.get("last_refusal") else "")
              + (f", answer lost with the DLL's process: {live['unknown']}" if live.get("unknown") else ""),
              f"- fills from the broker: {sum(fills.values())}"
              + (" (" + ", ".join(f"{t} {n}" for t, n in sorted(fills.items())) + ")" if fills else ""),
              f"- decision -> SendOrder returned: p50 {lat.get('p50_us')} µs, p99 {lat.get('p99_us')} µs, "
              f"max {lat.get('max_us')} µs" if lat.get("count") else "- decision -> SendOrder returned: no send",
              f"- reconciliations: {live.get('reconciliations', 0)}, "
              f"{'agreeing at the end' if live.get('reconciled') else 'DISAGREEING at the end: trading was stopped'}"]
    first, last = live.get("first_reconciliation", ""), live.get("last_reconciliation", "")
    if first:
        lines.append(f"  - at start: {first}")
    if last and (last != first or live.get("reconciliations", 0) > 1):
        lines.append(f"  - last: {last}")
    broker, ours = live.get("broker_positions") or {}, live.get("ours") or {}
    lines += ["", "| ticker | broker at the end | ours at the end | |", "|---|---|---|---|"]
    for t in sorted(set(broker) | set(ours)):
        b, o = broker.get(t), ours.get(t, 0)
        verdict = "not read" if b is None else "agrees" if b == o else "**MISMATCH**"
        cells = ["-" if q is None else f"{q:+d}" if q else "0" for q in (b, o)]
        lines.append(f"| {t} | {cells[0]} | {cells[1]} | {verdict} |")
    working = live.get("working") or []
    if not working:
        lines += ["", "Working orders left at the end: none."]
    else:
        lines += ["", f"Working orders left at the end: {len(working)}.", "",
                  "| client id | local id | ticker | side | qty | traded | state |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {w['client_id']} | {w['local_id']} | {w['ticker']} | {w['side']} | {w['qty']} | {w['traded']} | "
                  f"{w['state']} |" for w in working]
    return lines


def run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    try:
        run_dir = find_run(cfg, args.run)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FEED
    data, _ = rebuild(run_dir)
    summary_path = run_file(str(run_dir), SUMMARY_FILE)
    summary = json.loads(summary_path.read_text()) if summary_path else None
    out = Path(args.out) if args.out else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    images = charts(data, summary, out, args.max_points)
    md = out / "report.md"
    md.write_text(markdown(run_dir, data, summary, images), encoding="utf-8")
    print(json.dumps({"run": run_dir.name, "report": str(md), "images": [str(p) for p in images],
                      "decisions": data.decisions, "digest": data.digest,
                      "matches_live": bool(summary and summary.get("decision_digest") == data.digest)}))
    return EXIT_OK
