"""Your own specialist by import path: refused clearly when it cannot work, treated like a built-in when it can."""
import sys
import textwrap

import pytest

from app import config
from app.events import Decision, Reward
from app.hierarchy import Hierarchy
from app.market.generator import PlantedMarket
from app.market.scenarios import ScenarioParams
from tests.conftest import run_app

MOMENTUM = "examples.my_specialist:Momentum"


def _cfg(**extra):
    return config.load(None, {"agents.enabled": ["orderflow", "tape", MOMENTUM],
                              "agents.params": {"momentum": {"horizon": 12, "window": 20, "min_ticks": 2}}, **extra})


def test_a_user_specialist_gets_experts_rewards_and_weights_like_the_built_ins():
    cfg = _cfg()
    market = PlantedMarket("planted", 3, tickers=("WDO",), params=ScenarioParams(trades=4000))
    h = Hierarchy(cfg, clock=lambda: 0)
    out = [o for ev in market.events() for o in h.on_event(ev)]
    desk = next(iter(h.desks.values()))
    assert {"momentum@12", "momentum@12:fade", "momentum@24", "momentum@24:fade"} <= set(desk.experts)
    rewarded = {r.agent for r in out if isinstance(r, Reward)}
    assert {"momentum@12", "momentum@12:fade", "momentum@24"} <= rewarded
    weights = [d.weights for d in out if isinstance(d, Decision)]
    assert weights and all("momentum@12" in w for w in weights)
    assert len({round(w["momentum@12"], 6) for w in weights}) > 1  # the learner moved it
    assert h.snapshot()["tickers"][desk.ticker]["specialists"]["momentum"]["signals"] > 0


@pytest.mark.parametrize("entry, needle", [
    ("nosuchpkg.signals:Thing", "cannot import nosuchpkg.signals"),
    ("examples.my_specialist:Nope", "has no Nope"),
    ("app.events:Trade", "not a subclass of app.agents.base.BaseSpecialist"),
    ("orderflw", "neither a built-in specialist"),
])
def test_a_bad_entry_is_one_config_line_naming_it(entry, needle):
    with pytest.raises(config.ConfigError) as err:
        config.load(None, {"agents.enabled": ["orderflow", entry]})
    msg = str(err.value)
    assert needle in msg and "'agents': enabled" in msg and "\n" not in msg


def test_a_user_specialist_needs_a_name_of_its_own(tmp_path, monkeypatch):
    (tmp_path / "clash.py").write_text(textwrap.dedent("""
        from app.agents.base import BaseSpecialist
        class Dup(BaseSpecialist):
            name = "tape"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(config.ConfigError) as err:
        config.load(None, {"agents.enabled": ["clash:Dup"]})
    assert "`name`" in str(err.value)
    sys.modules.pop("clash", None)


def test_the_cli_refuses_a_bad_entry_with_exit_2(tmp_path):
    (tmp_path / "config.toml").write_text('[agents]\nenabled = ["orderflow", "nosuchpkg:X"]\n')
    proc = run_app("eval", "--seeds", "1", "--trades", "1000", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nosuchpkg" in proc.stderr
