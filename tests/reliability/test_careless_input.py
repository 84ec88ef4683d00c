"""Careless input gets one clear line and the README's exit code, never a traceback or a run that never ends."""
import pytest

from app import config as config_mod
from tests.conftest import run_app


def test_config_saved_with_a_utf8_byte_order_mark_is_accepted(tmp_path):
    p = tmp_path / "c.toml"
    p.write_bytes(b"\xef\xbb\xbf[simulator]\nseed = 11\n")
    assert config_mod.load(p).simulator.seed == 11


@pytest.mark.parametrize("make, needle", [
    (lambda d: d, "is a directory"),
    (lambda d: (d / "latin1.toml", (d / "latin1.toml").write_bytes(b"# configura\xe7\xe3o\n"))[0], "not UTF-8"),
])
def test_unreadable_config_is_one_line_naming_the_fix(tmp_path, make, needle):
    path = make(tmp_path)
    with pytest.raises(config_mod.ConfigError) as err:
        config_mod.load(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("toml, key", [
    ('[zmq]\nendpoint = "tcp://127.0.0.1:99999"\n', "zmq.endpoint"),
    ("[valkey]\nport = 70000\n", "valkey.port"),
    ("[feed]\nconnect_timeout = inf\n", "feed.connect_timeout"),
    ("[simulator]\nrate = nan\n", "simulator.rate"),
])
def test_out_of_range_values_are_refused_with_the_key(tmp_path, toml, key):
    p = tmp_path / "c.toml"
    p.write_text(toml)
    with pytest.raises(config_mod.ConfigError) as err:
        config_mod.load(p)
    msg = str(err.value)
    assert key in msg or all(part in msg for part in key.split(".")), msg


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_run_refuses_a_duration_that_would_never_end_with_exit_2(value):
    proc = run_app("run", f"--duration={value}", timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--duration" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
