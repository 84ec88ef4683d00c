"""Live orders are refused unless every condition holds; each refusal is one line naming what to set."""
import pytest

from app import config as config_mod
from app.execution.live_guard import ENV_CONFIRM, ENV_ROUTING_PASSWORD, LiveRefused, check, refusal

READY = {"execution.mode": "live", "feed.kind": "simulator", "feed.routing": True, "execution.account": "A1",
         "execution.broker": 3, "risk.max_order_qty": 2, "risk.price_band_ticks": 20.0}
ENV = {ENV_CONFIRM: "yes"}


def cfg(**changes):
    over = dict(READY)
    over.update({k.replace("__", "."): v for k, v in changes.items()})
    return config_mod.load(None, over)


def test_paper_is_never_refused_and_the_complete_live_setup_passes():
    assert refusal(config_mod.load(None, {})) is None
    assert refusal(cfg(), ENV) is None
    check(cfg(), ENV)


@pytest.mark.parametrize("change,env,needle", [
    ({"feed__kind": "replay"}, ENV, "feed.kind"),
    ({"feed__routing": False}, ENV, "feed.routing"),
    ({"execution__account": ""}, ENV, "execution.account"),
    ({"execution__broker": 0}, ENV, "execution.broker"),
    ({"risk__max_order_qty": 0}, ENV, "risk.max_order_qty"),
    ({"risk__price_band_ticks": 0.0}, ENV, "risk.price_band_ticks"),
    ({"risk__kill_switch": True}, ENV, "kill_switch"),
    ({}, {}, ENV_CONFIRM),
    ({}, {ENV_CONFIRM: "YES please"}, ENV_CONFIRM),
    ({"feed__kind": "profitdll"}, ENV, ENV_ROUTING_PASSWORD),
])
def test_each_missing_condition_is_named_in_one_line(change, env, needle):
    why = refusal(cfg(**change), env)
    assert why is not None and needle in why and "\n" not in why
    with pytest.raises(LiveRefused, match=needle.replace(".", r"\.")):
        check(cfg(**change), env)


def test_the_routing_password_never_appears_in_the_refusal():
    why = refusal(cfg(feed__kind="profitdll"), {ENV_ROUTING_PASSWORD: "s3cr3t-pw"})
    assert why is not None and "s3cr3t-pw" not in why


def test_run_refuses_live_mode_with_one_line_and_exit_code_2(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "live.toml"
    cfg.write_text('[execution]\nmode = "live"\n[run]\ndata_dir = "%s"\n' % (tmp_path / "data"))
    p = subprocess.run([sys.executable, "-m", "app", "run", "--config", str(cfg), "--duration", "5"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if "feed.routing" in ln]
    assert len(lines) == 1 and "config error" in lines[0]
    assert not (tmp_path / "data" / "journal").exists()  # refused before anything started

