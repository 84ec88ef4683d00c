from app.config import CoordinationConfig
from app.coordination.coordinator import ActiveSignals, Coordinator

EXPERTS = ["orderflow", "liquidity", "tape", "footprint", "flat"]


def test_blend_is_normalised_over_the_awake_experts_plus_flat():
    c = Coordinator(EXPERTS, CoordinationConfig(entry_threshold=0.3))
    a = ActiveSignals(4)
    a.add(0, 0.8, now=1, horizon=10)
    w = [0.5, 0.2, 0.1, 0.1, 0.1]
    assert abs(c.blend(w, a) - 0.5 * 0.8 / (0.5 + 0.1)) < 1e-12  # silent liquidity/tape/footprint do not dilute
    assert c.target(c.blend(w, a)) == 1
    a.add(1, -0.5, now=1, horizon=10)
    assert abs(c.blend(w, a) - (0.5 * 0.8 - 0.2 * 0.5) / (0.5 + 0.2 + 0.1)) < 1e-12


def test_one_signal_at_uniform_weights_moves_the_target_by_what_the_formula_says():
    # the blend at the uniform start: w s / (w + w_flat) = s / 2, whatever the number of experts
    for n in (5, 17):
        c = Coordinator([f"e{i}" for i in range(n - 1)] + ["flat"], CoordinationConfig(entry_threshold=0.3))
        a = ActiveSignals(n - 1)
        a.add(2, 0.7, now=1, horizon=10)
        blend = c.blend([1.0 / n] * n, a)
        assert abs(blend - 0.35) < 1e-12
        assert c.target(blend) == 1  # the old blend (divided by every weight) gave 0.7 / n: never above 0.3
        a.add(2, 0.5, now=2, horizon=10)
        assert c.target(c.blend([1.0 / n] * n, a)) == 0  # 0.25 < 0.3


def test_a_follow_and_fade_pair_at_equal_weight_cancels():
    c = Coordinator(["of@15", "of@15:fade", "flat"], CoordinationConfig(entry_threshold=0.3))
    a = ActiveSignals(2)
    a.add(0, 0.9, now=1, horizon=15)
    a.add(1, -0.9, now=1, horizon=15)
    assert c.blend([1 / 3, 1 / 3, 1 / 3], a) == 0.0
    assert c.blend([0.7, 0.1, 0.2], a) > 0.3  # once the learner prefers following, it follows


def test_a_specialist_trusted_less_than_flat_speaking_alone_cannot_open_a_position():
    c = Coordinator(EXPERTS, CoordinationConfig(entry_threshold=0.3))
    a = ActiveSignals(4)
    a.add(2, -1.0, now=1, horizon=10)
    assert c.target(c.blend([0.5, 0.02, 0.02, 0.02, 0.44], a)) == 0


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
