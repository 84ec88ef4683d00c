"""How a batch travels to Valkey: backlog chunks and the one server-side script that writes them.

The script XADDs every entry with its explicit id, then records the progress hash, atomically. An id that is not
above the stream's last one is either already there (a duplicate: catch-up re-sent it) or older than what the
stream holds (an earlier run caught up after a later one wrote): the script tells them apart with XRANGE and
stores the older entry in the run's late stream `<prefix>:late:<run_id>:<kind>[:<TICKER>]` under the same id,
so nothing journaled is ever dropped as a "duplicate".
"""
from __future__ import annotations

from collections import deque

import msgspec

# One call per batch: XADD every entry, then record the progress. Entries travel as a few msgpack arrays and one
# string of payloads, so the client packs a dozen arguments per batch, not three per entry (redis-py packs each
# argument in Python), and the loop never touches an entry one by one to send it.
#   KEYS[1] = progress hash, KEYS[2..] = every stream this writer has used (stream i is KEYS[i + 1])
#   ARGV[1] = seq of the last input entry ("" = no input entries: no progress), ARGV[2] = the run's latest exchange
#   time in ms at that entry, ARGV[3] = msgpack array of MAXLEN per stream (strings)
#   ARGV[4..6] = input entries: msgpack array [stream i, ms, n] per entry (id "ms-n"), msgpack array of payload
#   lengths, the payloads one after the other; ARGV[7..9] = derived entries, the same way
#   ARGV[10] = the late-stream prefix "<prefix>:late:<run_id>:" ("" = no late streams: a writer without a journal,
#   e.g. a replay of old tapes, keeps the old rule "not above the last id = a duplicate"), ARGV[11] = length of
#   "<prefix>:" (the part of a stream key the late key replaces)
# Returns {added, duplicates, late, then (stream i, ms of its last input entry) per stream with input entries}.
# The late streams are written through keys the script computes (the embedded server is never a cluster).
WRITE_LUA = """
local maxlen = cmsgpack.unpack(ARGV[3])
local fmt, find, sub, pcall = string.format, string.find, string.sub, redis.pcall
local late_prefix, cut = ARGV[10], tonumber(ARGV[11]) + 1
local added, dups, late = 0, 0, 0
local last = {}
for b = 4, 7, 3 do
  local meta, lens, data = cmsgpack.unpack(ARGV[b]), cmsgpack.unpack(ARGV[b + 1]), ARGV[b + 2]
  local inputs = b == 4
  local pos = 1
  for i = 1, #lens do
    local k, ms, n = meta[3 * i - 2], meta[3 * i - 1], meta[3 * i]
    local stop = pos + lens[i]
    local key, id, payload = KEYS[k + 1], fmt('%d-%d', ms, n), sub(data, pos, stop - 1)
    local r = pcall('XADD', key, 'MAXLEN', '~', maxlen[k], id, 'd', payload)
    pos = stop
    if type(r) == 'table' and r.err then
      if not find(r.err, 'equal or smaller', 1, true) then return redis.error_reply(r.err) end
      if late_prefix == '' or #redis.call('XRANGE', key, id, id) > 0 then
        dups = dups + 1
      else
        local r2 = pcall('XADD', late_prefix .. sub(key, cut), 'MAXLEN', '~', maxlen[k], id, 'd', payload)
        if type(r2) == 'table' and r2.err then
          if not find(r2.err, 'equal or smaller', 1, true) then return redis.error_reply(r2.err) end
          dups = dups + 1
        else
          late = late + 1
        end
      end
    else
      added = added + 1
    end
    if inputs then last[k] = ms end
  end
end
local out = {added, dups, late}
if ARGV[1] ~= '' then
  local fields = {'seq', ARGV[1], 'now', ARGV[2]}
  for k, ms in pairs(last) do
    fields[#fields + 1] = 'ms:' .. KEYS[k + 1]
    fields[#fields + 1] = fmt('%d', ms)
    out[#out + 1] = k
    out[#out + 1] = ms
  end
  redis.call('HSET', KEYS[1], unpack(fields))
end
return out
"""
encode = msgspec.msgpack.Encoder().encode
NONE = (encode([]), encode([]), b"")  # no entries of a kind: empty meta, lengths, payloads


class Chunk:
    """Backlog entries of one enqueue() call (at most `max_batch`), as the script takes them: `meta` is
    [stream i, ms, n] per entry (n = journal seq for inputs, the derived counter otherwise), `lens` the payload
    lengths, `data` the payloads back to back; `now` is the run's latest exchange time (ms) after the last entry."""

    __slots__ = ("after", "data", "lens", "meta", "now")

    def __init__(self, meta: list[int], lens: list[int], data: bytes, now: int, after: int | None = None) -> None:
        self.meta, self.lens, self.data, self.now = meta, lens, data, now
        # the journal seq these entries must not overtake: their own (inputs), the inputs they came from (derived)
        self.after = meta[-1] if after is None else after

    @property
    def first(self) -> int:
        return self.meta[2]

    @property
    def last(self) -> int:
        return self.meta[-1]

    def drop_front(self, k: int) -> None:
        self.data = self.data[sum(self.lens[:k]):]
        del self.meta[:3 * k], self.lens[:k]

    def keep_front(self, k: int) -> None:
        self.data = self.data[:sum(self.lens[:k])]
        del self.meta[3 * k:], self.lens[k:]


def pack(chunks: list[Chunk]) -> tuple[bytes, bytes, bytes]:
    """The script's three arguments for these chunks' entries."""
    if not chunks:
        return NONE
    if len(chunks) == 1:
        c = chunks[0]
        return encode(c.meta), encode(c.lens), c.data
    meta: list[int] = []
    lens: list[int] = []
    for c in chunks:
        meta += c.meta
        lens += c.lens
    return encode(meta), encode(lens), b"".join([c.data for c in chunks])


def take(chunks: deque[Chunk], limit: int, upto: int | None = None) -> list[Chunk]:
    """The first chunks holding at most `limit` entries together (at least one chunk); when `upto` is given, only
    chunks the journal has on disk up to that seq (none at all if the first is beyond it)."""
    out: list[Chunk] = []
    n = 0
    for c in chunks:
        k = len(c.lens)
        if upto is not None and c.after > upto or out and n + k > limit:
            break
        out.append(c)
        n += k
    return out

