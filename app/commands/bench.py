"""`python -m app bench [SECTION ...] [--json]`: hot-path measurements, every comparison made within one run.

Sections are registered in `SECTIONS` (name -> function(Options) -> dict); a new one may also register its
ratios/goals (report.RATIOS) and its table (report.RENDERERS), otherwise its dict is printed as is. `all` runs every
registered one in order; `--render FILE` prints the tables of a result saved with `--json`. A section that fails
(a worker crashed, timed out, or lost events) stops the run: the failure is printed (as {"error": ...} with
--json) instead of any number, and the exit code is 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable

from app.bench import bridge, floor, outputs, pipeline, report, routing, stages
from app.bench.worker import FAULT_ENV, Options, WorkerError

NAME = "bench"
HELP = ("measure the hot path: callback floor, bridge designs, the whole pipeline, Valkey, ZMQ, replay, live "
        "routing and the loop's cost per stage (tables, or one JSON object)")

SECTIONS: dict[str, Callable[[Options], dict[str, Any]]] = {
    "floor": floor.run,
    "bridge": bridge.run,
    "pipeline": pipeline.run,
    "valkey": outputs.run_valkey,
    "zmq": outputs.run_zmq,
    "replay": pipeline.run_replay,
    "routing": routing.run,
    "stages": stages.run,
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_arguments(p: argparse.ArgumentParser) -> None:
    names = ", ".join([*SECTIONS, "all"])
    p.add_argument("sections", nargs="*", default=["all"], metavar="SECTION",
                   help=f"what to measure: {names} (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object (progress goes to stderr)")
    p.add_argument("--quick", action="store_true", help="tiny sizes, seconds in all: a smoke test, not numbers")
    p.add_argument("--seconds", type=float, default=None, metavar="S",
                   help="measured seconds per paced point (default 3; --quick 0.3)")
    p.add_argument("--events", type=int, default=None, metavar="N",
                   help="events per full-speed point (default: floor 2M kept / 250k default thread state, "
                        "bridge 500k, a0 a fifth)")
    p.add_argument("--repeat", type=int, default=None, metavar="K",
                   help="runs per full-speed point, the median kept (default 3; --quick 1)")
    p.add_argument("--quiet-wait", type=float, default=None, metavar="S",
                   help="before each point wait up to S seconds for other processes to use < 0.3 cores "
                        "(default 5, at most 90 s per run; 0 with --quick; 0 = never wait)")
    p.add_argument("--nice", type=int, default=None, metavar="N",
                   help="run every worker at niceness N (e.g. -10 on a shared machine; negative needs root or "
                        "CAP_SYS_NICE); default: inherited")
    p.add_argument("--sched", choices=("batch", "default"), default="batch",
                   help="Linux: every worker's threads SCHED_BATCH, as run.sched_batch = true does live (default), "
                        "or the kernel's default policy (run.sched_batch = false)")
    p.add_argument("--api", choices=("v1", "v2"), default="v1",
                   help="trade callback: v1 = TNewTradeCallback (all fields as arguments, default); "
                        "v2 = SetTradeCallbackV2 + TranslateTrade inside the callback")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="loop of designs a, a0, b")
    p.add_argument("--switch-intervals", default=None, metavar="S[,S...]",
                   help="bridge: sys.setswitchinterval values (seconds) tried at 5k/s for designs a and c "
                        "(default 0.005,0.001,0.0002, each run --repeat times; none with --quick; '' to skip)")
    p.add_argument("--render", default=None, metavar="FILE",
                   help="print the tables of a JSON result saved earlier (--json > FILE) and measure nothing")
    p.add_argument("--inject-fault", default=None, metavar="crash|gap[:TARGET]",
                   help="test the bench itself: workers crash, or lose one event in 100 between callback and "
                        "hand-off; ':d', ':a', ':tuple_kept' ... limits it to one design or floor point "
                        f"(also ${FAULT_ENV})")


def _intervals(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    values = tuple(float(x) for x in text.split(",") if x.strip())
    for v in values:
        if not 0 < v < 1:
            raise ValueError(f"switch interval {v:g} s is out of range (0, 1)")
    return values


def _selected(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        if name == "all":
            out += [n for n in SECTIONS if n not in out]
        elif name in SECTIONS:
            if name not in out:
                out.append(name)
        else:
            raise ValueError(f"unknown bench section {name!r} (available: {', '.join(SECTIONS)}, all)")
    return out


def render_saved(path: str) -> int:
    try:
        with open(path) as f:
            out = json.load(f)
    except (OSError, ValueError) as exc:
        print(f"bench: cannot read {path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if out.get("error"):
        print(f"bench failed: {out['error']}", file=sys.stderr)
        return EXIT_FAILED
    _print_tables(out)
    return EXIT_OK


def _print_tables(out: dict[str, Any]) -> None:
    printer = report.Printer()
    report.render_machine(printer, out["machine"])
    for name, section in out["sections"].items():
        report.render(printer, name, section)
    printer.line(f"{out.get('seconds', 0):g} s in all")


def run(args: argparse.Namespace) -> int:
    if args.render:
        return render_saved(args.render)
    try:
        names = _selected(args.sections)
        intervals = _intervals(args.switch_intervals)
        if args.seconds is not None and args.seconds <= 0:
            raise ValueError("--seconds must be > 0")
        if args.events is not None and args.events < 1000:
            raise ValueError("--events must be >= 1000")
        if args.repeat is not None and not 1 <= args.repeat <= 20:
            raise ValueError("--repeat must be 1..20")
        fault = args.inject_fault or os.environ.get(FAULT_ENV, "")
        if fault and fault.partition(":")[0] not in ("crash", "gap"):
            raise ValueError(f"fault {fault!r} is not crash or gap (optionally :TARGET)")
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()

    def progress(text: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {text}", file=sys.stderr, flush=True)

    opts = Options(quick=args.quick, seconds=args.seconds, events=args.events, api=args.api, loop=args.loop,
                   fault=fault, switch_intervals=intervals, repeat=args.repeat, quiet=args.quiet_wait,
                   nice=args.nice, sched_batch=args.sched == "batch", progress=progress)
    machine = report.machine_info()
    machine["load_start"] = report.load_average()
    machine["nice"] = args.nice
    machine["sched"] = args.sched
    out: dict[str, Any] = {"bench": names, "machine": machine, "quick": args.quick, "sections": {}}
    if fault:
        out["injected_fault"] = fault
    try:
        for name in names:
            progress(f"bench {name} ...")
            section = SECTIONS[name](opts)
            report.ratios_and_goals(name, section)
            out["sections"][name] = section
    except (WorkerError, KeyboardInterrupt) as exc:
        message = str(exc) if isinstance(exc, WorkerError) else "interrupted"
        failed = {"bench": names, "error": message, "completed": list(out["sections"]), "machine": machine}
        if fault:
            failed["injected_fault"] = fault
        if args.json:
            print(json.dumps(failed))
        print(f"bench failed: {message}", file=sys.stderr)
        return EXIT_FAILED
    machine["load_end"] = report.load_average()
    machine["waited_for_quiet_s"] = round(opts.waited, 1)
    out["seconds"] = round(time.monotonic() - started, 1)
    goals = {f"{name}.{g}": v for name, s in out["sections"].items() for g, v in s.get("goals", {}).items()}
    out["goals"] = goals
    if args.json:
        print(json.dumps(out, default=str))
    else:
        _print_tables(out)
    return EXIT_OK
