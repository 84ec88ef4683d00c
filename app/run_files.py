"""A run's identity and the files kept beside its journal: what replay, the report and a restart read back."""
from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from app.config import Config
from app.events import Decision

STATE_NAME = "hierarchy"
# beside a run's journal: what replay and the report start from, and what the run measured live
INITIAL_STATE_FILE = "initial_state.msgpack"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
VALKEY_COMPLETE_FILE = "valkey.complete"  # every input event of the run is in Valkey (app.io.earlier_runs)
_digest_encoder = msgspec.msgpack.Encoder()


def decision_fingerprint(d: Decision) -> bytes:
    """Everything a decision says except its wall-clock latency: what two replays must agree on."""
    return _digest_encoder.encode((d.ticker, d.ts, d.target, d.regime, d.weights, d.signals, d.reason, d.trade_id))


def masked_config(cfg: Config) -> dict[str, Any]:
    """The settings as kept beside the journal: a password in the Valkey URL never reaches a file."""
    from app.io.valkey_server import mask_url

    data = msgspec.to_builtins(cfg)
    data["valkey"]["url"] = mask_url(cfg.valkey.url)
    return data


_issued: set[str] = set()


def new_run_id(prefix: str = "run") -> str:
    """Time and pid; a second run started within the same second in this process gets a suffix."""
    base = f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    run_id, n = base, 1
    while run_id in _issued:
        n += 1
        run_id = f"{base}-{n}"
    _issued.add(run_id)
    return run_id
