"""The sweep's table: per walk-forward step, per setting, and the in-sample / out-of-sample summary.

Figures are coordinator net P&L in R$ (fees and spread paid, marked to the last trade), summed over tickers, per
session day. In-sample (IS) = over a step's train days, the days the choice was made on; out-of-sample (OOS) = over
its test days, which the choice never saw. Per-day averages, because train windows overlap from step to step while
test windows do not.

Rows of the summary: "walk-forward choice" (each step's chosen setting, judged on that step's test days),
"defaults" (the base config, never tuned), "flat" and "equal weight" (the baseline lanes of the defaults' run).

The overfit flag, precisely:
- on a step: the chosen setting beat the defaults on the train days and then lost to them on the test days;
- on a setting's row: it was chosen on at least one step, and over the test days of the steps that chose it its
  OOS P&L/day is below the defaults' over the same days (the best in-sample, worse than not tuning at all);
- on the "walk-forward choice" row: IS/day above the defaults' and OOS/day below them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.backtest.metrics import day_label, sharpe
from app.research.grid import Setting, label
from app.research.walkforward import Step, choose

MAIN = "coordinator"
DEFAULT = -1  # setting_index of the base config's own run


@dataclass
class Sweep:
    settings: list[Setting]
    steps: list[Step]
    pnl: dict[int, dict[int, dict[str, float]]]  # setting index (DEFAULT too) -> day -> lane -> net, all tickers
    chosen: list[int]  # per step
    next_choice: int  # chosen on the last train window, for trading from here: the config fragment's setting
    next_train: tuple[int, ...]

    def day_pnl(self, s: int, day: int, lane: str = MAIN) -> float:
        return self.pnl[s].get(day, {}).get(lane, 0.0)

    def total(self, s: int, days: tuple[int, ...], lane: str = MAIN) -> float:
        return sum(self.day_pnl(s, d, lane) for d in days)


def collect(tasks: list[Any], results: list[dict | None]) -> dict[int, dict[int, dict[str, float]]]:
    """Task results -> setting -> day -> lane -> net summed over tickers, added in task order (fixed), so the same
    inputs give the same floats bit for bit."""
    out: dict[int, dict[int, dict[str, float]]] = {}
    for task, res in zip(tasks, results):
        if res is None:
            raise ValueError(f"task {task.index} has no result")
        days = out.setdefault(task.setting_index, {})
        for day in sorted(res["days"]):
            lanes = days.setdefault(day, {})
            for lane, net in res["days"][day].items():
                lanes[lane] = lanes.get(lane, 0.0) + net
    return out


def evaluate(settings: list[Setting], steps: list[Step], pnl: dict[int, dict[int, dict[str, float]]],
             train_days: int) -> Sweep:
    sw = Sweep(settings, steps, pnl, [], 0, ())
    idx = range(len(settings))
    for st in steps:
        sw.chosen.append(choose([sw.total(i, st.train) for i in idx]))
    all_days = sorted({d for st in steps for d in (*st.train, *st.test)})
    sw.next_train = tuple(all_days[-train_days:])
    sw.next_choice = choose([sw.total(i, sw.next_train) for i in idx])
    return sw


def _per_day(total: float, n: int) -> float | None:
    return total / n if n else None


def step_rows(sw: Sweep) -> list[dict[str, Any]]:
    rows = []
    for st, c in zip(sw.steps, sw.chosen):
        c_is, c_oos = sw.total(c, st.train), sw.total(c, st.test)
        d_is, d_oos = sw.total(DEFAULT, st.train), sw.total(DEFAULT, st.test)
        oos_all = sorted((sw.total(i, st.test) for i in range(len(sw.settings))), reverse=True)
        rows.append({
            "step": st.index + 1, "train": f"{day_label(st.train[0])}..{day_label(st.train[-1])}",
            "test": f"{day_label(st.test[0])}..{day_label(st.test[-1])}", "chosen": label(sw.settings[c]),
            "is_per_day": c_is / len(st.train), "oos_per_day": c_oos / len(st.test),
            "defaults_is_per_day": d_is / len(st.train), "defaults_oos_per_day": d_oos / len(st.test),
            # 1 = the chosen setting was also the best on the test days; n = the worst of n
            "oos_rank": oos_all.index(c_oos) + 1,
            "overfit": c_is > d_is and c_oos < d_oos,
        })
    return rows


def setting_rows(sw: Sweep) -> list[dict[str, Any]]:
    train_n = sum(len(st.train) for st in sw.steps)
    test_days = tuple(d for st in sw.steps for d in st.test)
    rows = []
    for i, s in enumerate(sw.settings):
        mine = [st for st, c in zip(sw.steps, sw.chosen) if c == i]
        judged = tuple(d for st in mine for d in st.test)
        own, dflt = sw.total(i, judged), sw.total(DEFAULT, judged)
        rows.append({
            "setting": label(s), **{k: v for k, v in s},
            "is_per_day": _per_day(sum(sw.total(i, st.train) for st in sw.steps), train_n),
            "oos_per_day": _per_day(sw.total(i, test_days), len(test_days)),
            "chosen_steps": len(mine),
            "oos_per_day_when_chosen": _per_day(own, len(judged)),
            "overfit": bool(mine) and own < dflt,
        })
    return rows


def summary_rows(sw: Sweep) -> list[dict[str, Any]]:
    train_n = sum(len(st.train) for st in sw.steps)
    test_days = [d for st in sw.steps for d in st.test]

    def row(name: str, is_total: float, oos_daily: list[float]) -> dict[str, Any]:
        return {"row": name, "is_per_day": _per_day(is_total, train_n),
                "oos_per_day": _per_day(sum(oos_daily), len(oos_daily)), "oos_total": sum(oos_daily),
                "oos_sharpe_days": sharpe(oos_daily), "overfit": False}

    chosen = row("walk-forward choice", sum(sw.total(c, st.train) for st, c in zip(sw.steps, sw.chosen)),
                 [sw.day_pnl(c, d) for st, c in zip(sw.steps, sw.chosen) for d in st.test])
    dflt = row("defaults", sum(sw.total(DEFAULT, st.train) for st in sw.steps),
               [sw.day_pnl(DEFAULT, d) for d in test_days])
    chosen["overfit"] = chosen["is_per_day"] > dflt["is_per_day"] and chosen["oos_per_day"] < dflt["oos_per_day"]
    lanes = [row(name, sum(sw.total(DEFAULT, st.train, lane) for st in sw.steps),
                 [sw.day_pnl(DEFAULT, d, lane) for d in test_days])
             for name, lane in (("flat", "flat"), ("equal weight", "equal"))]
    return [chosen, dflt, *lanes]


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "OVERFIT" if v else ""
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def table(rows: list[dict[str, Any]], cols: list[tuple[str, str]], markdown: bool = False) -> str:
    head = [h for _, h in cols]
    body = [[_fmt(r[k]) for k, _ in cols] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join([*lines, *("| " + " | ".join(b) + " |" for b in body)])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*line).rstrip() for line in [head, *body])


SUMMARY_COLS = [("row", "row"), ("is_per_day", "IS R$/day"), ("oos_per_day", "OOS R$/day"),
                ("oos_total", "OOS R$ total"), ("oos_sharpe_days", "OOS Sharpe (days)"), ("overfit", "flag")]
STEP_COLS = [("step", "step"), ("train", "train days"), ("test", "test days"), ("chosen", "chosen on train"),
             ("is_per_day", "IS R$/day"), ("oos_per_day", "OOS R$/day"), ("defaults_is_per_day", "defaults IS"),
             ("defaults_oos_per_day", "defaults OOS"), ("oos_rank", "OOS rank"), ("overfit", "flag")]
SETTING_COLS = [("setting", "setting"), ("is_per_day", "IS R$/day"), ("oos_per_day", "OOS R$/day"),
                ("chosen_steps", "chosen"), ("oos_per_day_when_chosen", "OOS R$/day when chosen"),
                ("overfit", "flag")]


def render_text(sw: Sweep) -> str:
    n = len(sw.settings)
    parts = [
        f"walk-forward: {len(sw.steps)} step(s), {n} setting(s); IS = train days (where the choice was made), "
        f"OOS = the next test days (never seen by the choice); coordinator net R$ per day, all tickers",
        "", table(summary_rows(sw), SUMMARY_COLS), "", table(step_rows(sw), STEP_COLS), "",
        table(setting_rows(sw), SETTING_COLS), "",
        f"next choice (on {day_label(sw.next_train[0])}..{day_label(sw.next_train[-1])}): "
        f"{label(sw.settings[sw.next_choice])}",
    ]
    return "\n".join(parts)
