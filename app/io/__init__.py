"""Outputs and persistence, one idea per module:

- codec: the one msgpack form of an event (journal frames, ZeroMQ payloads, Valkey entries)
- journal: every input event of a run, append-only; read back for replay and Valkey catch-up
- zmq_publisher: the live PUB stream for other tools
- valkey_server: the embedded Valkey (or an external URL)
- valkey_writer: batched stream writes, learned state, run summaries; catch-up from the journal
- query: time-range reads for notebooks and `python -m app query`

docs/OUTPUTS.md is the contract for consumers in other languages.
"""
