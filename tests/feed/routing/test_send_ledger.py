"""The send ledger outlives the process that wrote it, survives a torn last line, and compacts when it grows."""
from app.feed.profitdll import send_ledger
from app.feed.profitdll.send_ledger import NEVER, UNKNOWN, SendLedger


def test_answers_survive_a_new_process_and_a_torn_line(tmp_path):
    path = tmp_path / "sent.jsonl"
    a = SendLedger(path)
    a.intent("r-1", "SendOrder buy 1 WDOZ26 market")
    a.answer("r-1", 41)
    a.intent("r-2", "SendOrder sell 1 WDOZ26 market")  # died here: the answer never written
    a.intent("r-3", "SendOrder sell 2 WDOZ26 market")
    a.answer("r-3", -2147483645)
    a.close()
    with open(path, "a") as f:
        f.write('{"c":"r-4","w":"SendOr')  # kill -9 in the middle of a write
    b = SendLedger(path)
    assert b.lookup("r-1") == 41 and b.lookup("r-2") == UNKNOWN and b.lookup("r-3") == -2147483645
    assert b.lookup("r-4") is NEVER and b.lookup("r-5") is NEVER
    b.intent("r-5", "x")  # appends after the torn line, on a line of its own
    b.close()
    assert SendLedger(path).lookup("r-5") == UNKNOWN


def test_compaction_keeps_the_latest_answers(tmp_path, monkeypatch):
    monkeypatch.setattr(send_ledger, "COMPACT_AT", 50)
    monkeypatch.setattr(send_ledger, "KEEP", 10)
    path = tmp_path / "sent.jsonl"
    a = SendLedger(path)
    for n in range(40):
        a.intent(f"r-{n}", "x")
        a.answer(f"r-{n}", n + 1)
    a.close()
    b = SendLedger(path)
    assert b.lookup("r-39") == 40 and b.lookup("r-30") == 31 and b.lookup("r-29") is NEVER
    assert sum(1 for _ in open(path)) == 10
