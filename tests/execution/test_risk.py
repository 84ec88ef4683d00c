"""Risk limits on their own, and enforced by the hierarchy before any order exists."""
from app import config
from app.config import RiskConfig
from app.events import Book, Fill, Order, RiskBreach, Trade
from app.execution.risk import RiskGate
from app.hierarchy import Hierarchy
from tests.agents.make import NS, T0

MIN = 60 * NS


def test_max_position_clips_the_target():
    g = RiskGate(RiskConfig(max_position=2))
    assert g.vet(T0, 0, 5, 0.0)[0] == 2
    allowed, breaches = g.vet(T0, 0, -3, 0.0)
    assert allowed == -2 and breaches[0][0] == "max_position"


def test_daily_loss_makes_orders_reduce_only_until_the_next_session():
    g = RiskGate(RiskConfig(max_daily_loss=100.0))
    g.new_day(1, equity=50.0)
    assert g.vet(T0, 2, 3, equity=-60.0) == (2, [g.vet(T0, 2, 3, -60.0)[1][0]])
    assert g.vet(T0, 2, 1, equity=-60.0)[0] == 1  # reducing is allowed
    assert g.vet(T0, 2, -1, equity=-60.0)[0] == 0  # a flip is cut to flat
    g.new_day(2, equity=-60.0)
    assert g.vet(T0, 0, 1, equity=-60.0)[0] == 1


def test_orders_per_minute_by_exchange_time():
    g = RiskGate(RiskConfig(max_orders_per_minute=2))
    assert g.vet(T0, 0, 1, 0.0)[0] == 1
    assert g.vet(T0 + 1, 1, 0, 0.0)[0] == 0
    allowed, breaches = g.vet(T0 + 2, 0, 1, 0.0)
    assert allowed == 0 and breaches[0][0] == "max_orders_per_minute"
    assert g.vet(T0 + MIN, 0, 1, 0.0)[0] == 1  # the first order left the window
    assert g.vet(T0 + MIN + 5, 1, 1, 0.0) == (1, [])  # no order needed, nothing counted


def test_kill_switch_forces_flat_and_logs_it():
    g = RiskGate(RiskConfig(kill_switch=True))
    allowed, breaches = g.vet(T0, 1, 1, 0.0)
    assert allowed == 0 and [b[0] for b in breaches] == ["kill_switch"]


# ---------------------------------------------------------------------------------------- through the hierarchy
class Stream:
    def __init__(self):
        self.n = 0
        self.ts = T0
        self.bid = 5000.0

    def quote(self):
        return [Book(ticker="WDOJ24", ts=self.ts, side="bid", levels=((self.bid, 20, 2),), received_ns=0),
                Book(ticker="WDOJ24", ts=self.ts, side="ask", levels=((self.bid + 0.5, 20, 2),), received_ns=0)]

    def trade(self, side, dt=1.0):
        self.n += 1
        self.ts += int(dt * NS)
        price = self.bid + 0.5 if side == "buy" else self.bid
        return Trade(ticker="WDOJ24", exchange="F", ts=self.ts, trade_id=self.n, price=price, qty=1, volume=0.0,
                     buyer=1, seller=2, aggressor=side, received_ns=0)

    def sweep(self, side, dt=1.0):
        """5 same-side trades through 3 levels: an orderflow signal on the last one."""
        d = 0.5 if side == "buy" else -0.5
        evs = []
        for k in range(5):
            evs.append(self.trade(side, dt))
            if k in (0, 2):
                self.bid += d
                evs += self.quote()
        return evs

    def noise(self, k, dt=1.0):
        return [self.trade("sell" if j % 2 else "buy", dt) for j in range(k)]


def trusting_orderflow(**risk):
    cfg = config.load(overrides={"coordination.learner.regime_experts": False, "coordination.max_contracts": 4,
                                 **{f"risk.{k}": v for k, v in risk.items()}})
    h = Hierarchy(cfg, clock=lambda: 0)
    s = Stream()
    h.on_batch(s.quote())
    d = h.desk("WDOJ24")
    d.learner.g = [0.0] * len(d.experts)  # the coordinator follows orderflow alone
    d.learner.g[d.follow["orderflow"]], d.learner.g[d.index["flat"]] = 0.97, 0.03
    return h, s


def kinds(out):
    return [type(e).__name__ for e in out]


def test_a_sweep_the_coordinator_trusts_becomes_an_order_and_a_fill():
    h, s = trusting_orderflow()
    out = h.on_batch(s.noise(3) + s.sweep("buy"))
    assert kinds(out)[-5:] == ["Signal", "Decision", "Order", "Fill", "Position"]
    assert h.snapshot()["tickers"]["WDOJ24"]["position"]["qty"] > 0


def test_max_position_blocks_before_the_order_exists():
    h, s = trusting_orderflow(max_position=1)
    out = h.on_batch(s.noise(3) + s.sweep("buy"))
    breaches = [e for e in out if isinstance(e, RiskBreach)]
    orders = [e for e in out if isinstance(e, Order)]
    assert [b.rule for b in breaches] == ["max_position"]
    assert [o.qty for o in orders] == [1]


def test_kill_switch_blocks_new_exposure_and_flattens():
    h, s = trusting_orderflow()
    h.on_batch(s.noise(3) + s.sweep("buy"))
    h.kill_switch(True)
    out = h.on_batch(s.noise(1))
    fills = [e for e in out if isinstance(e, Fill)]
    assert [f.side for f in fills] == ["sell"] and h.snapshot()["tickers"]["WDOJ24"]["position"]["qty"] == 0
    out = h.on_batch(s.noise(20) + s.sweep("buy"))
    assert not [e for e in out if isinstance(e, Order)]
    assert "kill_switch" in [e.rule for e in out if isinstance(e, RiskBreach)]


def test_orders_per_minute_limit_holds_back_the_next_order():
    h, s = trusting_orderflow(max_orders_per_minute=1)
    out = h.on_batch(s.noise(3) + s.sweep("buy", dt=0.1))  # opens: 1 order
    out += h.on_batch(s.noise(30, dt=0.1))  # the signal expires: closing would be a 2nd order within the minute
    assert len([e for e in out if isinstance(e, Order)]) == 1
    assert "max_orders_per_minute" in [e.rule for e in out if isinstance(e, RiskBreach)]


def test_daily_loss_limit_stops_new_exposure():
    h, s = trusting_orderflow(max_daily_loss=1.0)
    h.on_batch(s.noise(3) + s.sweep("buy"))  # the spread alone makes the open position lose > R$1
    h.on_batch(s.noise(30))  # the exit is allowed (reduces)
    assert h.snapshot()["tickers"]["WDOJ24"]["position"]["qty"] == 0
    out = h.on_batch(s.noise(3) + s.sweep("sell"))
    assert not [e for e in out if isinstance(e, Order)]
    assert "max_daily_loss" in [e.rule for e in out if isinstance(e, RiskBreach)]


def test_daily_loss_limit_resets_at_nine_local_on_a_dst_day():
    from datetime import datetime, timezone

    def utc(h, mi):  # 2018-11-05: Brazil on daylight time (UTC-2), so 09:00 local is 11:00 UTC
        return int(datetime(2018, 11, 5, h, mi, tzinfo=timezone.utc).timestamp()) * NS

    h, s = trusting_orderflow(max_daily_loss=1.0)
    s.ts = utc(10, 0)  # 08:00 local: still the session of the 4th's night
    h.on_batch(s.noise(3) + s.sweep("buy"))
    h.on_batch(s.noise(30))  # flat again, down more than R$1: reduce-only for the rest of the session
    s.ts = utc(10, 58)
    out = h.on_batch(s.noise(3) + s.sweep("sell"))  # 08:58-08:59 local
    assert s.ts < utc(11, 0)
    assert not [e for e in out if isinstance(e, Order)]
    assert "max_daily_loss" in [e.rule for e in out if isinstance(e, RiskBreach)]
    s.ts = utc(11, 0)  # 09:00 local: the new session resets the limit (a fixed UTC-3 would wait until 12:00 UTC)
    out = h.on_batch(s.noise(3) + s.sweep("sell"))
    assert [o.side for o in out if isinstance(o, Order)] == ["sell"]
    assert h.desk("WDOJ24").main.risk.day_pnl > -1.0


def test_max_order_qty_steps_toward_the_target_and_the_price_band_refuses_far_orders():
    g = RiskGate(RiskConfig(max_position=10, max_order_qty=2, price_band_ticks=4.0))
    allowed, breaches = g.vet(T0, 1, 7, 0.0)
    assert allowed == 3 and breaches[0][0] == "max_order_qty"
    assert g.vet(T0 + NS, 3, 2, 0.0)[0] == 2  # a step within the cap is untouched
    assert g.price_ok(5002.0, 5000.0, 0.5) is None  # 4 ticks: inside
    assert "ticks from the last trade" in g.price_ok(5002.5, 5000.0, 0.5)
    assert g.snapshot()["breaches"]["price_band"] == 1


def test_random_decision_streams_never_get_an_order_past_a_limit():
    """Property over seeded random streams: whatever the targets, P&L and timing, the allowed step breaks no limit
    the gate owns (position, order size, orders per minute, reduce-only after the daily loss, kill switch)."""
    import random

    for seed in range(40):
        rng = random.Random(seed)
        cfg = RiskConfig(max_position=rng.randint(1, 6), max_daily_loss=rng.choice([50.0, 500.0]),
                         max_orders_per_minute=rng.randint(1, 8), max_order_qty=rng.randint(0, 3),
                         kill_switch=rng.random() < 0.15)
        g = RiskGate(cfg)
        g.new_day(1, 0.0)
        pos, ts, sent = 0, T0, []
        for _ in range(400):
            ts += int(rng.expovariate(1 / 5.0) * NS)
            equity = rng.uniform(-2 * cfg.max_daily_loss, cfg.max_daily_loss)
            target = rng.randint(-12, 12)
            allowed, _ = g.vet(ts, pos, target, equity)
            assert abs(allowed) <= cfg.max_position or abs(allowed) <= abs(pos)
            if cfg.max_order_qty:
                assert abs(allowed - pos) <= cfg.max_order_qty
            if cfg.kill_switch or equity <= -cfg.max_daily_loss:  # reduce-only: never larger, never flipped
                assert abs(allowed) <= abs(pos) and allowed * pos >= 0
            if allowed != pos:
                sent.append(ts)
                assert sum(1 for s in sent if ts - s < MIN) <= cfg.max_orders_per_minute
            pos = allowed
