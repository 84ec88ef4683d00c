import pytest

from app import config
from tests.conftest import run_app


def test_defaults_load_without_a_file():
    cfg = config.load(None)
    assert cfg.feed.kind == "simulator" and cfg.feed.tickers == ["WDO", "WIN"]


def test_repository_config_toml_is_valid_and_equals_the_defaults():
    from tests.conftest import ROOT

    assert config.load(ROOT / "config.toml") == config.load(None)


@pytest.mark.parametrize("toml, fragment", [
    ("[feed]\nkindd = 'simulator'\n", "unknown key 'feed.kindd'"),
    ("[nope]\nx = 1\n", "unknown key 'nope'"),
    ("[simulator]\nrate = 'fast'\n", "'simulator.rate': Expected `float`, got `str`"),
    ("[simulator]\nrate = -5\n", "'simulator.rate': Expected `float` > 0.0"),
    ("[feed]\nkind = 'telepathy'\n", "'feed.kind': Invalid enum value 'telepathy'"),
    ("[feed]\ntickers = []\n", "'feed': needs at least one ticker"),
    ("[feed]\ntickers = ['wdo z26']\n", "is not a B3 code"),
    ("[feed]\nexchange = 'BMF'\n", "must be one letter"),
    ("[feed\n", "not valid TOML"),
])
def test_bad_config_is_one_clear_error_naming_the_key(tmp_path, toml, fragment):
    path = tmp_path / "config.toml"
    path.write_text(toml)
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message


def test_cli_exits_2_with_one_line_on_bad_config(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[feed]\nkind = 'telepathy'\n")
    proc = run_app("run", "--config", str(path), "--duration", "1")
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "feed.kind" in lines[0], proc.stderr


def test_missing_config_file_is_exit_2(tmp_path):
    proc = run_app("run", "--config", str(tmp_path / "absent.toml"), "--duration", "1")
    assert proc.returncode == 2
    assert "file not found" in proc.stderr


def test_dotted_overrides_are_validated_too():
    with pytest.raises(config.ConfigError, match="'feed.depth_levels'"):
        config.load(None, {"feed.depth_levels": 0})
