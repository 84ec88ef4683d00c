from app.config import CoordinationConfig
from app.coordination.coordinator import ActiveSignals, Coordinator

EXPERTS = ["orderflow", "liquidity", "tape", "footprint", "flat"]


def test_blend_is_the_weighted_vote_where_silent_specialists_and_flat_vote_zero():
    c = Coordinator(EXPERTS, CoordinationConfig(entry_threshold=0.3))
    a = ActiveSignals(4)
    a.add(0, 0.8, now=1, horizon=10)
    w = [0.5, 0.2, 0.1, 0.1, 0.1]
    assert abs(c.blend(w, a) - 0.4) < 1e-12
    assert c.target(c.blend(w, a)) == 1
    a.add(1, -0.5, now=1, horizon=10)
    assert abs(c.blend(w, a) - 0.3) < 1e-12


def test_a_distrusted_specialist_speaking_alone_cannot_open_a_position():
    c = Coordinator(EXPERTS, CoordinationConfig(entry_threshold=0.3))
    a = ActiveSignals(4)
    a.add(2, -1.0, now=1, horizon=10)
    assert c.target(c.blend([0.9, 0.02, 0.02, 0.02, 0.04], a)) == 0


def test_target_scales_with_the_blend_up_to_max_contracts():
    c = Coordinator(EXPERTS, CoordinationConfig(entry_threshold=0.3, max_contracts=4))
    assert c.target(0.29) == 0
    assert c.target(0.3) == 1
    assert c.target(-0.6) == -2
    assert c.target(1.0) == 4


def test_signals_expire_after_their_horizon():
    a = ActiveSignals(2)
    a.add(0, 0.5, now=10, horizon=5)
    a.add(1, -0.5, now=12, horizon=5)
    assert not a.expire(14)
    assert a.expire(15) and a.active() == [1]
    assert a.expire(17) and a.active() == []


def test_a_new_signal_from_the_same_specialist_replaces_and_extends_the_old_one():
    a = ActiveSignals(1)
    a.add(0, 0.5, now=10, horizon=5)
    a.add(0, -0.7, now=13, horizon=5)
    assert not a.expire(15)
    assert a.values[0] == -0.7
    assert a.expire(18)


def test_reason_names_the_regime_each_signal_and_the_outcome():
    c = Coordinator(EXPERTS, CoordinationConfig(entry_threshold=0.3))
    a = ActiveSignals(4)
    a.add(3, 0.9, now=1, horizon=10)
    text = c.reason("hi.range.mid", [0.1, 0.1, 0.1, 0.6, 0.1], a, 0.54, 1)
    assert "hi.range.mid" in text and "footprint +0.90x0.60" in text and "target +1" in text
