"""The control socket of a running app: `python -m app flatten` with the right token turns the kill switch on; a
wrong token is refused; without the token variable no socket is opened."""
import asyncio
import os
import sys

from app import config as config_mod
from app.app import App
from app.control import ENV_TOKEN, FILE, request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def app_on(tmp_path):
    cfg = config_mod.load(None, {"run.data_dir": str(tmp_path), "valkey.enabled": False, "zmq.enabled": False,
                                 "journal.enabled": False, "simulator.rate": 200.0})
    return App(cfg, fresh=True)


async def _flatten_cli(tmp_path, token):
    env = dict(os.environ, **{ENV_TOKEN: token})
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "app", "flatten", "--data-dir", str(tmp_path),
                                                cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, (out + err).decode()


def test_flatten_from_another_process_turns_the_kill_switch_on(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_TOKEN, "t0k3n")

    async def main():
        app = app_on(tmp_path)
        await app.start()
        try:
            assert (tmp_path / FILE).is_file() and "t0k3n" not in (tmp_path / FILE).read_text()
            bad = await request(tmp_path, "flatten", "wrong")
            assert not bad["ok"] and "token" in bad["detail"] and app.control.refused == 1
            assert not app.pipeline.hierarchy._kill
            code, text = await _flatten_cli(tmp_path, "t0k3n")
            assert code == 0 and "kill switch on" in text, text
            assert app.pipeline.hierarchy._kill
        finally:
            await app.stop()
        assert not (tmp_path / FILE).exists()

    asyncio.run(main())


def test_no_token_no_socket_and_flatten_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_TOKEN, raising=False)

    async def main():
        app = app_on(tmp_path)
        await app.start()
        try:
            assert app.control is None and not (tmp_path / FILE).exists()
            code, text = await _flatten_cli(tmp_path, "t0k3n")
            assert code == 2 and "no running app" in text
        finally:
            await app.stop()

    asyncio.run(main())
