"""Record a few trading days of WDO + WIN from the built-in simulated DLL as run journals, for `python -m app backtest`.

One `python -m app run --feed simulator` per day, each with its own exchange date (simulator.start) and seed, unpaced,
writing its journal under <out>/journal/<run_id>/ (Valkey and ZMQ off: only the journal is needed). Then:

    python examples/make_demo_tapes.py --out /tmp/bt-demo --days 5 --trades 200000
    cd /tmp/bt-demo && python -m app backtest journal --report report

Each day's run stops after --duration seconds; the simulator stops generating at simulator.max_trades, so the
duration only has to be long enough for that many trades (the script checks each run's count and says so if not).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

CONFIG = """\
[simulator]
seed = {seed}
pace = false
rate = {rate}
max_trades = {trades}
start = "{date} 09:00:00"

[run]
data_dir = "{data_dir}"

[valkey]
enabled = false

[zmq]
enabled = false
"""


def trading_days(first: dt.date, n: int) -> list[dt.date]:
    out = []
    d = first
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="/tmp/bt-demo", help="data directory (journals land in OUT/journal)")
    p.add_argument("--days", type=int, default=5)
    p.add_argument("--first", default="2026-11-23", help="first trading day, YYYY-MM-DD")
    p.add_argument("--trades", type=int, default=200_000, help="trades per day, both tickers together")
    p.add_argument("--rate", type=float, default=6.0,
                   help="simulated trades/s per ticker outside bursts: sets how much of the session a day covers")
    p.add_argument("--duration", type=float, default=60.0, help="seconds each day's run may take")
    p.add_argument("--seed", type=int, default=101, help="seed of the first day (+1 per day)")
    args = p.parse_args()

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for k, day in enumerate(trading_days(dt.date.fromisoformat(args.first), args.days)):
        cfg = out / f"sim-{day.isoformat()}.toml"
        cfg.write_text(CONFIG.format(seed=args.seed + k, rate=args.rate, trades=args.trades, date=day.isoformat(),
                                     data_dir=out.as_posix()))
        cmd = [sys.executable, "-m", "app", "run", "--config", str(cfg), "--feed", "simulator",
               "--duration", str(args.duration), "--json"]
        print("$", " ".join(cmd), flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else f"exit {r.returncode}", file=sys.stderr)
            return r.returncode
        summary = json.loads(r.stdout.strip().splitlines()[-1])
        got = sum(summary["trades"].values())
        print(f"  {day}: {summary['run_id']}: {got:,} trades {summary['trades']}, {summary['decisions']:,} "
              f"decisions live" + ("" if got >= args.trades else f"  (short of {args.trades:,}: raise --duration)"),
              flush=True)
    print(f"journals in {out / 'journal'}; now: cd {out} && python -m app backtest journal --report report")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
