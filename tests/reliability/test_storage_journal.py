"""Damaged journals never block a start, and every journal frame of consecutive runs reaches Valkey (issue 14,
items 2 and 4), checked frame by frame against the journal."""
from __future__ import annotations

import json
import tempfile
import time
import zlib
from pathlib import Path

from app.io.journal import FRAME, JournalReader, read_journal
from tests.conftest import run_app
from tests.io.valkey_compare import missing_in_embedded

NOVK = '[zmq]\nendpoint = "tcp://127.0.0.1:0"\n[valkey]\nenabled = false\n'
VK = '[zmq]\nendpoint = "tcp://127.0.0.1:0"\n'


def _scratch() -> Path:
    cwd = Path(tempfile.mkdtemp(prefix="hmarl-storage-"))
    (cwd / "config.toml").write_text(VK)
    (cwd / "novk.toml").write_text(NOVK)
    return cwd


def _run(cwd: Path, *extra: str) -> dict:
    done = run_app("run", "--duration", "2", "--json", *extra, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["stderr"] = done.stderr
    return out


def _frame_offsets(part: Path) -> list[int]:
    data = part.read_bytes()
    pos = data.index(b"\xa5HJF")
    out = []
    while pos < len(data):
        out.append(pos)
        pos += FRAME.size + FRAME.unpack_from(data, pos)[1]
    return out


def test_two_runs_in_a_row_store_every_journal_frame_in_valkey():
    """Book events before a ticker's first trade (ts 0) used to get ids like 0-5, refused in every run after the
    first and miscounted as duplicates."""
    cwd = _scratch()
    a = _run(cwd)
    b = _run(cwd)
    journal = cwd / "data/journal"
    timeless = [e for e in read_journal(journal / b["run_id"]) if type(e).__name__ == "Book" and e.ts == 0]
    assert timeless, "the case this test is about: book events without a time in the second run"
    result = missing_in_embedded(cwd / "data", [journal / a["run_id"], journal / b["run_id"]])
    for run_id, (compared, missing) in result.items():
        assert compared > 100, run_id
        assert missing == [], f"{run_id}: {len(missing)} of {compared} frames not in Valkey, e.g. {missing[:5]}"
    assert (journal / b["run_id"] / "valkey.complete").exists()


def test_a_damaged_earlier_journal_neither_blocks_nor_breaks_the_next_start():
    """A frame with a wrong length and one whose checksum holds over bytes that are no event: the next start
    feeds at once, reports each damage with file and byte offset, writes every other frame of the damaged run
    into Valkey, and `repair` rewrites the journal keeping every valid frame."""
    cwd = _scratch()
    a = _run(cwd, "--config", "novk.toml")
    run_dir = cwd / "data/journal" / a["run_id"]
    part = sorted(run_dir.glob("*.hmj"))[0]
    offsets = _frame_offsets(part)
    assert len(offsets) > 300
    data = bytearray(part.read_bytes())
    wrong = offsets[100]
    length = int.from_bytes(data[wrong + 4:wrong + 8], "little")
    data[wrong + 4:wrong + 8] = (length + 5).to_bytes(4, "little")
    junk = offsets[200]  # same length, checksum recomputed: only decoding can tell
    n = int.from_bytes(data[junk + 4:junk + 8], "little")
    data[junk + 20:junk + 20 + n] = b"\xc1" * n
    data[junk + 16:junk + 20] = zlib.crc32(bytes(data[junk + 20:junk + 20 + n]),
                                           zlib.crc32(bytes(data[junk + 4:junk + 16]))).to_bytes(4, "little")
    part.write_bytes(bytes(data))

    t0 = time.monotonic()
    b = _run(cwd)
    assert time.monotonic() - t0 < 60
    assert f"{part.relative_to(cwd)}: " in b["stderr"] and f"at byte {wrong}" in b["stderr"]
    assert "journal seq 101 missing" in b["stderr"]
    assert "is not an input event" in b["stderr"]
    assert sum(b["events"].values()) > 0  # the new run fed while the earlier one was caught up
    journal = cwd / "data/journal"
    result = missing_in_embedded(cwd / "data", [run_dir, journal / b["run_id"]])
    compared, missing = result[a["run_id"]]
    assert compared == len(offsets) - 2 and missing == []
    assert result[b["run_id"]][1] == []
    assert (run_dir / "valkey.complete").exists()

    fixed = run_app("repair", a["run_id"], "--json", cwd=cwd)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    report = json.loads(fixed.stdout)
    assert report["repaired"] and report["frames_kept"] == len(offsets) - 2
    assert [d["offset"] for d in report["damage"]] == [wrong] and len(report["undecodable_seqs"]) == 1
    reader = JournalReader(run_dir)
    assert sum(1 for _ in reader) == len(offsets) - 2 and reader.damage == []
    again = run_app("repair", a["run_id"], cwd=cwd)
    assert again.returncode == 0 and "nothing rewritten" in again.stdout
