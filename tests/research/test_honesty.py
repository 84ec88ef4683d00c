"""The planted overfit: one setting's P&L is a lucky run on the first train window (noise it was tuned to) and a
loss afterwards. Walk-forward picks it where it looked best; the out-of-sample rows must say it lost to the
untuned defaults, and must not accuse the setting that is steadily good."""
from app.research import results as R
from app.research.walkforward import split

DAYS = list(range(20400, 20408))  # eight session days
STEADY, LUCKY = 0, 1
SETTINGS = [(("coordination.entry_threshold", 0.4),), (("coordination.entry_threshold", 0.2),)]


def pnl():
    lucky = {d: (40.0 if d < DAYS[3] else -30.0) for d in DAYS}  # the noise sits in the first train window
    return {
        R.DEFAULT: {d: {"coordinator": 5.0, "flat": 0.0, "equal": -2.0} for d in DAYS},
        STEADY: {d: {"coordinator": 10.0} for d in DAYS},
        LUCKY: {d: {"coordinator": lucky[d]} for d in DAYS},
    }


def test_the_setting_tuned_to_noise_is_flagged_by_its_out_of_sample_rows():
    steps = split(DAYS, 3, 1)
    sw = R.evaluate(SETTINGS, steps, pnl(), 3)
    assert sw.chosen == [LUCKY, LUCKY, STEADY, STEADY, STEADY]  # best in-sample while the lucky days are in view

    steps_rows = R.step_rows(sw)
    assert [r["overfit"] for r in steps_rows] == [True, True, False, False, False]
    assert steps_rows[0]["is_per_day"] == 40.0 and steps_rows[0]["oos_per_day"] == -30.0
    assert steps_rows[0]["oos_rank"] == 2  # the worst of the two on the day it was judged

    rows = {r["setting"]: r for r in R.setting_rows(sw)}
    lucky, steady = rows["coordination.entry_threshold=0.2"], rows["coordination.entry_threshold=0.4"]
    assert lucky["overfit"] and lucky["chosen_steps"] == 2 and lucky["oos_per_day_when_chosen"] == -30.0
    assert not steady["overfit"] and steady["oos_per_day_when_chosen"] == 10.0

    summary = {r["row"]: r for r in R.summary_rows(sw)}
    choice, dflt = summary["walk-forward choice"], summary["defaults"]
    assert choice["is_per_day"] > dflt["is_per_day"] and choice["oos_per_day"] < dflt["oos_per_day"]
    assert choice["overfit"] and not dflt["overfit"]
    assert choice["oos_total"] == -30.0 * 2 + 10.0 * 3
    assert summary["flat"]["oos_total"] == 0.0 and summary["equal weight"]["oos_per_day"] == -2.0
    assert sw.next_choice == STEADY  # the fragment would carry the steady setting, not the lucky one
    assert "OVERFIT" in R.render_text(sw)


def test_an_honest_choice_is_not_flagged():
    p = pnl()
    p[LUCKY] = {d: {"coordinator": 1.0} for d in DAYS}
    sw = R.evaluate(SETTINGS, split(DAYS, 3, 1), p, 3)
    assert sw.chosen == [STEADY] * 5
    assert not any(r["overfit"] for r in [*R.step_rows(sw), *R.setting_rows(sw), *R.summary_rows(sw)])
