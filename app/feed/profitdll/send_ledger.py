"""Which of our client order ids reached SendOrder, and what it answered: a file that outlives the process.

Why: the process that called SendOrder can die between the call and the answer reaching the loop (a feed child
killed, the app killed with -9). The next process must then tell "sent, local id N" from "never sent" exactly,
or it either sends the order a second time or loses track of a real one. Guessing from the broker's order list
(same ticker, side, quantity) is what reconciliation falls back to only when the file cannot say.

Per order two lines, written on the DLL owner thread around the call: the intent right before SendOrder, the
answer (local id, or the negative code) right after. Each line is flushed to the OS before the DLL is called, so a
kill -9 of the process loses nothing (a power cut may: that is what the broker-side fallback is for). One JSON
object per line; a torn last line (the kill hit mid-write) is skipped when the file is read back.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("app.feed.profitdll")

LEDGER_FILE = "routing-sent.jsonl"  # in run.data_dir, which one instance holds at a time (datadir_lock)
NEVER, UNKNOWN = None, 0  # lookup(): never reached SendOrder / reached it, the answer was lost
KEEP = 20_000  # entries kept when the file is compacted at open (a day of trading is far below)
COMPACT_AT = 100_000


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class SendLedger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.answers: dict[str, int] = {}  # client id -> local id (> 0), refused code (< 0), or UNKNOWN
        self.orders: dict[str, tuple[str, str, int]] = {}  # client id -> (ticker, side, qty) as the intent said
        self.deduplicated = 0  # sends answered from the file instead of the DLL
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = self._load()
        if lines > COMPACT_AT:
            self._compact()
        self._f: IO[str] = open(path, "a", encoding="utf-8")
        if path.stat().st_size and not _ends_with_newline(path):
            self._write_raw("\n")  # end a torn last line, or the next record would be glued to it

    def _load(self) -> int:
        n = 0
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    n += 1
                    try:
                        rec: dict[str, Any] = json.loads(line)
                        cid = str(rec["c"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn line from a kill in the middle of a write
                    if "l" in rec:
                        self.answers[cid] = int(rec["l"])
                    else:
                        self.answers.setdefault(cid, UNKNOWN)
                        self.orders[cid] = (str(rec.get("t", "")), str(rec.get("s", "")), int(rec.get("q", 0)))
        except FileNotFoundError:
            pass
        return n

    def _compact(self) -> None:
        keep = list(self.answers.items())[-KEEP:]
        self.answers = dict(keep)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for cid, local in keep:
                t, side, q = self.orders.get(cid, ("", "", 0))
                rec = {"c": cid, "l": local} if local != UNKNOWN else {"c": cid, "w": "", "t": t, "s": side, "q": q}
                f.write(json.dumps(rec) + "\n")
        os.replace(tmp, self.path)

    def lookup(self, client_id: str) -> int | None:
        """NEVER (None), UNKNOWN (0: the intent is there, the answer is not), the local id, or the refusal code."""
        return self.answers.get(client_id, NEVER)

    def intent(self, client_id: str, what: str, ticker: str = "", side: str = "", qty: int = 0) -> None:
        """Before the DLL call. ticker/side/qty let a later run recognise the order at the broker if the answer
        is lost ("" / 0 where the DLL decides, as for SendZeroPosition)."""
        self._write({"c": client_id, "w": what, "t": ticker, "s": side, "q": qty})
        self.answers[client_id] = UNKNOWN
        self.orders[client_id] = (ticker, side, qty)

    def unresolved(self) -> list[tuple[str, str, str, int]]:
        """(client id, ticker, side, qty) of every intent whose answer was lost, oldest first."""
        return [(c, *self.orders.get(c, ("", "", 0))) for c, v in self.answers.items() if v == UNKNOWN]

    def answer(self, client_id: str, local_id_or_code: int) -> None:
        self._write({"c": client_id, "l": local_id_or_code})
        self.answers[client_id] = local_id_or_code

    def _write(self, rec: dict[str, Any]) -> None:
        self._write_raw(json.dumps(rec, separators=(",", ":")) + "\n")

    def _write_raw(self, text: str) -> None:
        self._f.write(text)
        self._f.flush()

    def close(self) -> None:
        self._f.close()
