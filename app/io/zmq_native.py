"""The publisher's batch sends (app/io/zmq_batch.c) bound to the libzmq that pyzmq loaded, or None.

The C module calls zmq_send on pyzmq's own socket handle, so it must call the very library pyzmq uses: found
through pyzmq's extension module (dlsym on its handle searches the libraries it was linked with), else among the
libzmq files pyzmq's wheel ships, and accepted only if its version is pyzmq's. Anything missing means None, said
once in the log, and the publisher sends through pyzmq as before.
"""
from __future__ import annotations

import ctypes
import glob
import logging
import os
from typing import Any, Callable

import zmq

log = logging.getLogger("app.io.zmq")

Sender = Callable[[int, list[bytes], int, int], tuple[int, int, int, int]]
_found: list[Any] = []  # [sender or None] once looked up


def _candidates() -> list[str]:
    here = os.path.dirname(zmq.__file__)
    paths = [zmq.backend.cython._zmq.__file__]  # type: ignore[attr-defined]
    for folder in (here, os.path.join(here, os.pardir, "pyzmq.libs"), os.path.join(here, ".dylibs")):
        paths += sorted(glob.glob(os.path.join(folder, "*zmq*.so*")) + glob.glob(os.path.join(folder, "*zmq*.dll")) +
                        glob.glob(os.path.join(folder, "*zmq*.dylib")))
    return paths


def _libzmq() -> ctypes.CDLL | None:
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            for name in ("zmq_send", "zmq_errno", "zmq_version"):
                getattr(lib, name)
        except (OSError, AttributeError):
            continue
        major, minor, patch = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        lib.zmq_version(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(patch))
        if (major.value, minor.value, patch.value) == zmq.zmq_version_info():
            return lib
    return None


def batch_sender() -> Sender | None:
    """send(handle, [topic, payload, ...], EAGAIN, EINTR) -> (sent, dropped, errors, last errno), or None."""
    if _found:
        return _found[0]
    sender = None
    try:
        from app.io import _zmq_batch
    except ImportError:
        log.info("zmq: batch sender not built (no C compiler at install time?): sending through pyzmq")
    else:
        lib = _libzmq()
        if lib is None:
            log.info("zmq: libzmq %s not found beside pyzmq: sending through pyzmq", zmq.zmq_version())
        else:
            address = ctypes.cast(lib.zmq_send, ctypes.c_void_p).value
            _zmq_batch.bind(address, ctypes.cast(lib.zmq_errno, ctypes.c_void_p).value)
            sender = _zmq_batch.send
    _found.append(sender)
    return sender
