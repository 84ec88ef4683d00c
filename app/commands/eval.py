"""`python -m app eval`: the whole hierarchy on the planted-signal market, against baselines, as fast as possible.

For each scenario and seed the pure-Python generator (app.market) produces WDO and WIN trades and books; one
Hierarchy processes them (the coordinator is its main lane) and silent shadow lanes turn the very same signals into
positions with fixed weights, through the same paper executor, fees and risk limits:
- flat: never trades (P&L 0);
- equal: equal weight on every specialist with an active signal (the plain mean of what is being said);
- one lane per specialist (following its own signal at its own horizon); "best single" is, per seed, the one that
  did best (hindsight);
- oracle: knows the regime and follows its informative specialist, or fades it where the planted move is reversed
  (flat in null and latent stretches, where no specialist is "the" one).
Metrics per strategy and seed: net P&L (R$, fees and spread paid), Sharpe of P&L per block of 1,000 trades (and its
t statistic), max drawdown, turnover (contracts), hit rate (share of round trips with positive net P&L). "coord
wins" is the share of seeds in which the coordinator's net P&L beat that strategy's. After each regime switch, the
number of coordinator decisions on that ticker until it put > 0.5 weight on the informative specialist's experts of
the right side (follow, or fade in reversed), summed over their horizons.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import struct
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import msgspec

from app import config as config_mod
from app.events import Decision, Fill, Trade
from app.coordination.experts import side_weight
from app.coordination.policies import OraclePolicy, baseline_policies
from app.hierarchy import Hierarchy
from app.market.generator import PlantedMarket
from app.market.scenarios import PATTERNS, SCENARIOS, ScenarioParams

NAME = "eval"
HELP = "evaluate the coordinator against baselines on synthetic markets (null | planted | mixed | reversed | latent)"

BLOCK = 1000  # trades (all tickers) per P&L sample
SWITCH_GOAL = 150  # decisions
SINGLE = [f"only_{p}" for p in PATTERNS]
STRATEGIES = ["coordinator", "flat", "equal", *SINGLE, "best_single", "oracle"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all", help="default: all five")
    p.add_argument("--seeds", type=int, default=20, help="seeds per scenario (default 20)")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--trades", type=int, default=ScenarioParams().trades, help="trades per ticker per seed")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")


# --------------------------------------------------------------------------------------------------- one run
def run_seed(scenario: str, seed: int, cfg: config_mod.Config, trades: int) -> dict[str, Any]:
    """Run one seed; plain data out (it crosses process boundaries)."""
    market = PlantedMarket(scenario, seed, params=ScenarioParams(trades=trades),
                           contracts=cfg.execution.contracts)
    shadows: dict[str, Any] = {k: v for k, v in baseline_policies(cfg).items() if k != "flat"}
    shadows["oracle"] = OraclePolicy(market.informative, getattr(market, "direction", None))
    h = Hierarchy(cfg, clock=lambda: 0, shadows=shadows)

    digest = hashlib.sha256()
    decisions: dict[str, list[tuple[int, dict[str, float]]]] = {t: [] for t in market.tickers}
    samples: dict[str, list[float]] = {}
    n_trades = 0
    nonflat = 0
    on_event = h.on_event
    pack = struct.pack
    for ev in market.events():
        out = on_event(ev)
        if type(ev) is not Trade:
            continue
        n_trades += 1
        main = h.desks[ev.ticker].main.executor
        if main is not None and main.qty:
            nonflat += 1
        for o in out:
            to = type(o)
            if to is Decision:
                decisions[o.ticker].append((o.trade_id, o.weights))
                digest.update(pack("<qi", o.trade_id, o.target))
                digest.update(repr(sorted(o.weights.items())).encode())
            elif to is Fill:
                digest.update(pack("<qid", o.trade_id, o.qty, o.price))
        if n_trades % BLOCK == 0:
            _sample(h, samples)
    _sample(h, samples)

    result: dict[str, Any] = {"seed": seed, "trades": n_trades, "digest": digest.hexdigest()[:16],
                              "flat_share": 1.0 - nonflat / max(1, n_trades), "strategies": {}}
    strategies = result["strategies"]
    singles = [k for k in shadows if k.startswith("only_")]
    lanes = ["coordinator", "equal", *singles, "oracle"]
    for name in lanes:
        curve = samples.get(name, [0.0])
        stats = _curve_stats(curve)
        turnover = rts = wins = 0
        for d in h.desks.values():
            lane = next(ln for ln in d.lanes if ln.name == name)
            if lane.executor is not None:
                turnover += lane.executor.turnover
                rts += lane.executor.round_trips
                wins += lane.executor.wins
        strategies[name] = {**stats, "turnover": turnover, "round_trips": rts, "wins": wins}
    strategies["flat"] = {**_curve_stats([0.0] * len(samples.get("coordinator", [0.0]))), "turnover": 0,
                          "round_trips": 0, "wins": 0}
    best = max(singles, key=lambda s: strategies[s]["pnl"])
    strategies["best_single"] = {**strategies[best], "which": best}
    result["switches"] = _switches(market, decisions, cfg.coordination.entry_threshold)
    result["counts"] = {t: dict(d.counts) for t, d in h.desks.items()}
    return result


def _sample(h: Hierarchy, samples: dict[str, list[float]]) -> None:
    totals: dict[str, float] = {}
    for d in h.desks.values():
        mid = d.market.mid
        for lane in d.lanes:
            if lane.executor is not None:
                totals[lane.name] = totals.get(lane.name, 0.0) + lane.executor.equity(mid)
    for name, v in totals.items():
        samples.setdefault(name, [0.0]).append(v)


def _curve_stats(curve: list[float]) -> dict[str, float]:
    inc = [b - a for a, b in zip(curve, curve[1:])]
    n = len(inc)
    mean = sum(inc) / n if n else 0.0
    var = sum((x - mean) ** 2 for x in inc) / (n - 1) if n > 1 else 0.0
    sd = math.sqrt(var)
    sharpe = mean / sd if sd > 0 else 0.0
    peak = dd = 0.0
    for v in curve:
        peak = max(peak, v)
        dd = max(dd, peak - v)
    return {"pnl": curve[-1], "sharpe": sharpe, "t": sharpe * math.sqrt(n), "max_dd": dd}


def _switches(market: PlantedMarket, decisions: dict[str, list[tuple[int, dict[str, float]]]],
              threshold: float) -> list[dict]:
    """Per regime switch with an informative specialist: decisions until its weight (right side, horizons summed)
    first exceeded 0.5 ("needed"), and until its signal alone at full confidence would move the position ("acts":
    under the sleeping-experts blend that happens once its side outweighs the other side and flat enough, usually
    long before it holds half of all the weight, which also sits on experts that are asleep)."""
    out = []
    for ticker, regimes in market.regimes.items():
        decs = decisions[ticker]
        for k, r in enumerate(regimes):
            if k == 0 or r.informative is None:
                continue
            in_regime = [w for tid, w in decs if r.start <= tid <= r.end]
            fade = getattr(r, "sign", 1) < 0  # a reversed regime is learned by fading the specialist
            needed = next((j + 1 for j, w in enumerate(in_regime) if side_weight(w, r.informative, fade) > 0.5),
                          None)

            def acts(w: dict[str, float]) -> bool:
                right, wrong = side_weight(w, r.informative, fade), side_weight(w, r.informative, not fade)
                den = right + wrong + w.get("flat", 0.0)
                return den > 0 and (right - wrong) / den >= threshold

            acted = next((j + 1 for j, w in enumerate(in_regime) if acts(w)), None)
            out.append({"ticker": ticker, "informative": r.informative, "edge": r.edge, "needed": needed,
                        "acts": acted, "decisions": len(in_regime)})
    return out


def _worker(job: tuple[str, int, dict, int]) -> dict[str, Any]:
    scenario, seed, cfg_data, trades = job
    return run_seed(scenario, seed, config_mod.from_dict(cfg_data), trades)


# ------------------------------------------------------------------------------------------------ summaries
def summarise(scenario: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(runs)
    rows = {}
    for s in STRATEGIES:
        per = [r["strategies"][s] for r in runs if s in r["strategies"]]
        if not per:
            continue
        rts = sum(p["round_trips"] for p in per)
        rows[s] = {
            "pnl": sum(p["pnl"] for p in per) / len(per),
            "sharpe": sum(p["sharpe"] for p in per) / len(per),
            "max_dd": sum(p["max_dd"] for p in per) / len(per),
            "turnover": sum(p["turnover"] for p in per) / len(per),
            "hit_rate": sum(p["wins"] for p in per) / rts if rts else 0.0,
            "coord_wins": sum(1 for r in runs if r["strategies"]["coordinator"]["pnl"] > r["strategies"][s]["pnl"])
            / n,
        }
    coord = [r["strategies"]["coordinator"] for r in runs]
    oracle_total = sum(r["strategies"]["oracle"]["pnl"] for r in runs)
    coord_total = sum(c["pnl"] for c in coord)
    switches = [sw for r in runs for sw in r["switches"]]
    summary: dict[str, Any] = {
        "scenario": scenario,
        "seeds": n,
        "rows": rows,
        "capture": coord_total / oracle_total if oracle_total > 0 else None,
        "beats_equal": sum(1 for r in runs if r["strategies"]["coordinator"]["pnl"] > r["strategies"]["equal"]["pnl"]) / n,
        "flat_share": sum(r["flat_share"] for r in runs) / n,
        "significant_seeds": sum(1 for c in coord if c["t"] > 1.645),
        "allowed_false_positives": _binom_quantile(n, 0.05, 0.95),
    }
    if switches:
        def latency(group: list[dict], key: str = "needed") -> dict[str, Any]:
            needed = sorted(sw[key] for sw in group if sw.get(key) is not None)
            out = {
                "switches": len(group),
                "reached": len(needed),
                "within_goal": sum(1 for x in needed if x <= SWITCH_GOAL) / len(group) if group else 0.0,
                "median": needed[len(needed) // 2] if needed else None,
                "p90": needed[max(0, math.ceil(0.9 * len(needed)) - 1)] if needed else None,
            }
            if key == "needed":
                out["acts"] = latency(group, "acts")
            return out
        summary["switch_latency"] = {
            "all": latency(switches),
            "profitable": latency([sw for sw in switches if sw["edge"] > 1.0]),
            "unprofitable": latency([sw for sw in switches if sw["edge"] <= 1.0]),
        }
    return summary


def _binom_quantile(n: int, p: float, q: float) -> int:
    """Smallest k with P(Bin(n, p) <= k) >= q: how many seeds may look significant by chance alone."""
    acc = 0.0
    for k in range(n + 1):
        acc += math.comb(n, k) * p ** k * (1 - p) ** (n - k)
        if acc >= q:
            return k
    return n


def goals(summary: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(goal, met, measured) for the scenario."""
    sc = summary["scenario"]
    out = []
    if sc in ("planted", "mixed", "reversed"):
        lat = summary.get("switch_latency", {}).get("profitable")
        if lat and lat["switches"]:
            side = "fading" if sc == "reversed" else "following"
            out.append((f"weight > 0.5 on {side} the informative specialist within ~{SWITCH_GOAL} decisions after a "
                        "switch (regimes whose edge exceeds the cost)", lat["within_goal"] >= 0.8,
                        f"{lat['within_goal']:.0%} of {lat['switches']} switches; median {lat['median']}, "
                        f"p90 {lat['p90']}"))
        cap = summary["capture"]
        out.append(("captures >= 70% of the regime oracle's net P&L", cap is not None and cap >= 0.7,
                    "oracle lost money" if cap is None else f"{cap:.0%}"))
        out.append(("beats equal weight in >= 80% of seeds", summary["beats_equal"] >= 0.8,
                    f"{summary['beats_equal']:.0%}"))
    if sc == "latent":
        beats_flat = summary["rows"]["flat"]["coord_wins"]
        out.append(("beats equal weight in >= 80% of seeds", summary["beats_equal"] >= 0.8,
                    f"{summary['beats_equal']:.0%}"))
        out.append(("beats flat (makes money) in >= 80% of seeds", beats_flat >= 0.8, f"{beats_flat:.0%}"))
    if sc == "null":
        k, allowed = summary["significant_seeds"], summary["allowed_false_positives"]
        out.append(("no Sharpe beyond 5% false positives (seeds with t > 1.645)", k <= allowed,
                    f"{k} of {summary['seeds']} seeds (chance allows {allowed})"))
        out.append(("stays flat >= 95% of trades", summary["flat_share"] >= 0.95, f"{summary['flat_share']:.0%}"))
    if "deterministic" in summary:
        out.append(("determinism: a rerun gives the same decisions and fills bit for bit", summary["deterministic"],
                    "same digest" if summary["deterministic"] else "digests differ"))
    return out


def render(summary: dict[str, Any]) -> str:
    lines = [f"scenario {summary['scenario']}: {summary['seeds']} seeds"]
    head = f"{'strategy':<18}{'net P&L R$':>12}{'Sharpe/1k':>11}{'max DD R$':>11}{'turnover':>10}{'hit rate':>10}" \
           f"{'coord wins':>12}"
    lines.append(head)
    lines.append("-" * len(head))
    for name, r in summary["rows"].items():
        wins = "" if name == "coordinator" else f"{r['coord_wins']:.0%}"
        lines.append(f"{name:<18}{r['pnl']:>12,.0f}{r['sharpe']:>11.3f}{r['max_dd']:>11,.0f}{r['turnover']:>10,.0f}"
                     f"{r['hit_rate']:>10.0%}{wins:>12}")
    cap = summary["capture"]
    oracle = summary["rows"].get("oracle", {}).get("turnover", 0)
    why = "n/a (no informative specialist: the oracle stays flat)" if not oracle else "n/a (oracle lost money)"
    lines.append(f"capture of oracle P&L: {why if cap is None else f'{cap:.0%}'}; "
                 f"coordinator flat {summary['flat_share']:.0%} of trades; seeds with t > 1.645: "
                 f"{summary['significant_seeds']} (chance allows {summary['allowed_false_positives']})")
    for key, lat in summary.get("switch_latency", {}).items():
        if lat["switches"]:
            acts = lat.get("acts") or {}
            lines.append(f"switches ({key}): {lat['switches']}, reached > 0.5 weight in {lat['reached']}, "
                         f"within {SWITCH_GOAL} decisions {lat['within_goal']:.0%}, median {lat['median']}, "
                         f"p90 {lat['p90']}; acts on it within {SWITCH_GOAL} decisions "
                         f"{acts.get('within_goal', 0.0):.0%}, median {acts.get('median')}, p90 {acts.get('p90')}")
    for goal, met, measured in goals(summary):
        lines.append(f"  [{'met' if met else 'MISSED'}] {goal}: {measured}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ main
def run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    if args.seeds < 1 or args.trades < 1000:
        print("error: --seeds must be >= 1 and --trades >= 1000", file=sys.stderr)
        return 2
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    cfg_data = msgspec.to_builtins(cfg)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    jobs = [(sc, s, cfg_data, args.trades) for sc in scenarios for s in seeds]
    jobs += [(sc, seeds[0], cfg_data, args.trades) for sc in scenarios]  # determinism: the first seed again
    t0 = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_worker, jobs))
    else:
        results = [_worker(j) for j in jobs]
    elapsed = time.perf_counter() - t0
    summaries = []
    for k, sc in enumerate(scenarios):
        runs = results[k * len(seeds):(k + 1) * len(seeds)]
        again = results[len(scenarios) * len(seeds) + k]
        s = summarise(sc, runs)
        s["deterministic"] = again["digest"] == runs[0]["digest"]
        s["per_seed"] = [{"seed": r["seed"], "digest": r["digest"],
                          **{k2: round(v["pnl"], 2) for k2, v in r["strategies"].items()},
                          "best_single": r["strategies"]["best_single"]["which"]} for r in runs]
        s["switches"] = [sw for r in runs for sw in r["switches"]]
        summaries.append(s)
    if args.json:
        print(json.dumps({"elapsed_s": round(elapsed, 1), "trades_per_ticker": args.trades,
                          "scenarios": summaries,
                          "goals": {s["scenario"]: [{"goal": g, "met": m, "measured": v} for g, m, v in goals(s)]
                                    for s in summaries}}, indent=1, default=str))
    else:
        for s in summaries:
            print(render(s))
            print()
        total = len(jobs) * args.trades * 2
        print(f"{len(jobs)} runs ({args.trades:,} trades per ticker each) in {elapsed:.0f} s "
              f"({total / elapsed:,.0f} trades/s over {args.jobs} process(es))")
    return 0
