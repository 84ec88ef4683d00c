import math

import numpy as np

from app.config import LearnerConfig
from app.coordination.learner import Learner

PURE = LearnerConfig(fixed_share=0.0, floor=0.0, discount=1.0, regime_experts=False, history=0)


def adahedge_bound(losses: np.ndarray) -> float:
    """de Rooij et al. (2014): R <= 2 sqrt(L*(sT - L*)/T ln K) + s(16/3 ln K + 2), losses in [0, s]."""
    t, k = losses.shape
    s = float(losses.max() - min(0.0, losses.min()))
    best = float(losses.sum(axis=0).min())
    return 2 * math.sqrt(best * (s * t - best) / t * math.log(k)) + s * (16 / 3 * math.log(k) + 2)


def run(losses: np.ndarray, cfg: LearnerConfig = PURE) -> Learner:
    k = losses.shape[1]
    lr = Learner([f"e{i}" for i in range(k)], cfg, scale=1e-9, with_flat=False)
    for row in losses:
        lr.update("any", {i: -float(x) for i, x in enumerate(row)})  # rewards are negative losses
    return lr


def test_regret_against_the_best_expert_stays_under_the_adahedge_bound_on_noisy_losses():
    rng = np.random.default_rng(1)
    losses = rng.random((3000, 5))
    losses[:, 2] -= 0.1  # expert 2 is a little better
    losses = np.clip(losses, 0, 1)
    lr = run(losses)
    regret = lr.hedge_loss - losses.sum(axis=0).min()
    assert regret <= adahedge_bound(losses)
    assert lr.weights("any").index(max(lr.weights("any"))) == 2


def test_regret_stays_under_the_bound_where_follow_the_leader_fails():
    # the classic sequence that makes follow-the-leader lose every round
    t = 2000
    losses = np.zeros((t, 2))
    losses[0] = [0.5, 0.0]
    for i in range(1, t):
        losses[i] = [0.0, 1.0] if i % 2 else [1.0, 0.0]
    lr = run(losses)
    regret = lr.hedge_loss - losses.sum(axis=0).min()
    ftl_regret = (t - 1) - losses.sum(axis=0).min()  # FTL picks the loser every round after the first
    assert regret <= adahedge_bound(losses)
    assert regret < 0.2 * ftl_regret


def test_weights_are_invariant_to_the_scale_of_rewards():
    rng = np.random.default_rng(2)
    losses = rng.random((200, 3))
    a = run(losses).weights("any")
    b = run(losses * 1000.0).weights("any")
    assert np.allclose(a, b, rtol=1e-9)


def test_sleeping_experts_keep_their_weight_and_are_not_scored():
    lr = Learner(["a", "b", "c"], LearnerConfig(fixed_share=0.0, floor=0.0, regime_experts=False), scale=1.0)
    before = lr.g[2]
    for _ in range(20):
        lr.update("r", {0: 5.0, 1: -5.0})  # c abstains every time
    assert lr.g[2] == before
    assert lr.awake_steps == [20, 20, 0, 20]  # flat is always awake
    w = lr.weights("r")
    assert w[0] > w[3] > w[1]


def test_awake_mass_is_preserved_by_an_update():
    lr = Learner(["a", "b"], LearnerConfig(fixed_share=0.05, floor=0.0, regime_experts=True), scale=1.0)
    lr.update("r", {0: 1.0, 1: -1.0})
    g0, r0 = list(lr.g), list(lr.r["r"])
    lr.update("r", {0: 3.0})  # a and flat awake
    assert math.isclose(lr.g[0] + lr.r["r"][0] + lr.g[2] + lr.r["r"][2], g0[0] + r0[0] + g0[2] + r0[2])
    assert lr.g[1] == g0[1]


def test_fixed_share_lets_a_beaten_expert_recover_after_a_switch():
    def steps_to_recover(alpha: float) -> int:
        lr = Learner(["a", "b"], LearnerConfig(fixed_share=alpha, floor=0.0, discount=0.98, regime_experts=False),
                     scale=1.0)
        for _ in range(400):
            lr.update("r", {0: 2.0, 1: -2.0})
        for n in range(1, 2000):
            lr.update("r", {0: -2.0, 1: 2.0})
            if lr.weights("r")[1] > 0.5:
                return n
        return 10**9
    assert steps_to_recover(0.02) < steps_to_recover(0.0)


def test_floor_gives_every_expert_at_least_the_floor_and_sums_to_one():
    lr = Learner(["a", "b", "c"], LearnerConfig(fixed_share=0.0, floor=0.05), scale=1.0)
    for _ in range(200):
        lr.update("r", {0: 10.0, 1: -10.0, 2: -10.0})
    w = lr.weights("r")
    assert min(w) >= 0.05 - 1e-12
    assert math.isclose(sum(w), 1.0)


def test_regime_copies_let_two_regimes_trust_different_experts():
    lr = Learner(["a", "b"], LearnerConfig(fixed_share=0.0, floor=0.0, discount=0.99, regime_experts=True), scale=1.0)
    for _ in range(300):
        lr.update("calm", {0: 2.0, 1: -2.0})
        lr.update("wild", {0: -2.0, 1: 2.0})
    assert lr.weights("calm")[0] > lr.weights("calm")[1]
    assert lr.weights("wild")[1] > lr.weights("wild")[0]


def test_state_round_trip_restores_the_same_weights_and_matches_by_name():
    lr = Learner(["a", "b"], LearnerConfig(), scale=1.0)
    for k in range(50):
        lr.update("r1" if k % 2 else "r2", {0: 1.0 + k % 3, 1: -1.0})
    other = Learner(["a", "b"], LearnerConfig(), scale=1.0)
    other.restore(lr.state())
    assert other.weights("r1") == lr.weights("r1") and other.eta == lr.eta
    reordered = Learner(["b", "a", "new"], LearnerConfig(), scale=1.0)
    reordered.restore(lr.state())
    assert reordered.g[0] == lr.g[1] and reordered.g[1] == lr.g[0]


def test_same_rewards_give_bit_identical_weights():
    rng = np.random.default_rng(3)
    rewards = rng.normal(size=(500, 4))
    runs = []
    for _ in range(2):
        lr = Learner(["a", "b", "c", "d"], LearnerConfig(), scale=1.0)
        for k, row in enumerate(rewards):
            lr.update(f"r{k % 3}", {i: float(x) for i, x in enumerate(row) if (i + k) % 4})
        runs.append(lr.state())
    assert runs[0] == runs[1]


def test_a_regime_seen_for_the_first_time_starts_from_the_global_weights():
    lr = Learner(["a", "b"], LearnerConfig(fixed_share=0.0, floor=0.0, regime_experts=True), scale=1.0)
    for _ in range(50):
        lr.update("calm", {0: 2.0, 1: -2.0})
    before = lr.weights("never-seen")
    lr.update("new", {0: 0.0, 1: 0.0})  # creates the copy; zero rewards move nothing
    assert before == lr.weights("never-seen")
    assert all(math.isclose(x, y) for x, y in zip(lr.weights("new"), before))
