"""Rewrite a damaged journal so that it holds exactly its valid frames.

Every frame the resynchronising reader accepts is kept with its sequence number; every damaged stretch is
reported. The new parts are written beside the old ones first, then the damaged originals move to
`<run dir>/damaged-<time>/` (kept, never deleted) and the new parts take their names. A frame whose payload is
not an input event (checksum fine, content not decodable) is dropped and reported too: no reader could use it.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.io import codec
from app.io.journal_format import frame, header_bytes
from app.io.journal_reader import Damage, JournalReader, part_name, run_parts


@dataclass
class RepairReport:
    run_dir: Path
    frames_kept: int = 0
    undecodable: list[int] = field(default_factory=list)  # seqs whose payload is not an input event
    damage: list[Damage] = field(default_factory=list)
    moved_to: Path | None = None  # where the originals went (None: nothing needed repair)
    missing_seqs: int = 0  # holes in the sequence after repair (damaged frames, refused frames)

    @property
    def repaired(self) -> bool:
        return self.moved_to is not None


def repair_run(run_dir: str | Path) -> RepairReport:
    """Check a run's journal; rewrite it when anything is damaged. Raises JournalError when it is no journal."""
    run_dir = Path(run_dir)
    parts = run_parts(run_dir)
    report = RepairReport(run_dir)
    run_id = run_dir.name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    new_parts: list[Path] = []
    last_seq = 0
    # one new part per old part, so part sizes stay what journal.rotate_mb made them
    for index, old in enumerate(parts, 1):
        reader = JournalReader(old)
        reader.files = [old]  # this part only
        tmp = run_dir / f".repair-{stamp}-{index:05d}.tmp"
        with open(tmp, "wb") as out:
            first = True
            for seq, payload in reader:
                if first:
                    out.write(header_bytes(run_id, index, seq))
                    first = False
                try:
                    codec.decode_input(payload)
                except codec.CodecError:
                    report.undecodable.append(seq)
                    continue
                out.write(frame(payload, seq))
                report.frames_kept += 1
                report.missing_seqs += seq - last_seq - 1
                last_seq = seq
            if first:  # nothing valid in this part: an empty part still names where the sequence stands
                out.write(header_bytes(run_id, index, last_seq + 1))
            out.flush()
            os.fsync(out.fileno())
        report.damage += reader.damage
        new_parts.append(tmp)
    if not report.damage and not report.undecodable:
        for tmp in new_parts:
            tmp.unlink()
        return report
    moved = run_dir / f"damaged-{stamp}"
    moved.mkdir()
    for old in parts:
        old.rename(moved / old.name)
    for index, tmp in enumerate(new_parts, 1):
        tmp.rename(run_dir / part_name(run_id, index))
    report.moved_to = moved
    return report
