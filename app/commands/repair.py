"""`python -m app repair RUN`: rewrite a damaged journal keeping every valid frame, and say what was dropped."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.cli import EXIT_CONFIG, EXIT_OK, EXIT_STORAGE

NAME = "repair"
HELP = "rewrite a damaged run journal keeping every valid frame (the originals are kept in damaged-<time>/)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="run id (under the journal directory of the config) or run directory")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def _run_dir(arg: str, journal_root: Path) -> Path | None:
    given = Path(arg)
    if given.is_dir():
        return given
    candidate = journal_root / arg
    return candidate if candidate.is_dir() else None


def run(args: argparse.Namespace) -> int:
    from app import config as config_mod
    from app.io.datadir_lock import DataDirBusy, DataDirLock
    from app.io.journal_format import JournalError
    from app.io.journal_repair import repair_run

    cfg = config_mod.load(args.config)
    data_dir = Path(cfg.run.data_dir)
    journal_root = Path(cfg.journal.dir) if cfg.journal.dir else data_dir / "journal"
    run_dir = _run_dir(args.run, journal_root)
    if run_dir is None:
        print(f"repair: no run {args.run!r} in {journal_root} (give a run id listed there or a run directory)",
              file=sys.stderr)
        return EXIT_CONFIG
    lock = None
    if run_dir.resolve().parent == journal_root.resolve():
        # the data directory's owner may be writing this very run: never rewrite under a live instance
        lock = DataDirLock(data_dir)
        try:
            lock.acquire()
        except DataDirBusy as exc:
            print(f"repair: {exc}", file=sys.stderr)
            return EXIT_STORAGE
    try:
        report = repair_run(run_dir)
    except (JournalError, OSError) as exc:
        print(f"repair: {exc}", file=sys.stderr)
        return EXIT_STORAGE
    finally:
        if lock is not None:
            lock.release()
    if args.json:
        print(json.dumps({"run_dir": str(run_dir), "repaired": report.repaired, "frames_kept": report.frames_kept,
                          "damage": [d.__dict__ for d in report.damage], "undecodable_seqs": report.undecodable,
                          "missing_seqs": report.missing_seqs,
                          "originals": str(report.moved_to) if report.moved_to else None}))
        return EXIT_OK
    for d in report.damage:
        print(f"dropped: {d.line()}")
    for seq in report.undecodable:
        print(f"dropped: frame seq {seq}: checksum fine but not an input event")
    if report.repaired:
        print(f"repaired {run_dir}: {report.frames_kept} frames kept, {len(report.damage)} damaged stretches and "
              f"{len(report.undecodable)} undecodable frames dropped; originals in {report.moved_to}")
    else:
        print(f"{run_dir}: no damage found ({report.frames_kept} frames); nothing rewritten")
    return EXIT_OK
