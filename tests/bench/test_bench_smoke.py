"""`python -m app bench` with tiny sizes: it runs, its JSON has every field, and it fails loudly on a fault.

No timing is asserted: these are smoke tests on a shared machine; the numbers come from full-size runs.
"""
import json
import sys
import time

import pytest

from app.feed.native import ring
from tests.conftest import run_app

DESIGNS = ("n", "a", "a0", "b", "c", "d") if ring.get() is not None else ("a", "a0", "b", "c", "d")
RATES = ("1000", "5000", "20000", "full")
LATENCY = ("count", "p50_us", "p99_us", "p999_us", "max_us")


def _json(proc) -> dict:
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line on stdout, got {proc.stdout[-2000:]!r}"
    return json.loads(lines[0])


def _quick(*sections: str, timeout: float) -> dict:
    """`bench SECTION ... --quick --json`, which must succeed: its one JSON object."""
    proc = run_app("bench", *sections, "--quick", "--json", timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return _json(proc)


@pytest.fixture(scope="module")
def quick_run() -> dict:
    proc = run_app("bench", "floor", "bridge", "--quick", "--json", "--switch-intervals", "0.005,0.001",
                   timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return _json(proc)


def test_quick_bench_json_has_machine_info_and_no_error(quick_run):
    out = quick_run
    assert "error" not in out
    assert out["bench"] == ["floor", "bridge"]
    m = out["machine"]
    for key in ("date", "cpu_count", "python", "platform"):
        assert m[key], key
    assert set(out["sections"]) == {"floor", "bridge"}


def test_floor_reports_every_point_and_the_kept_over_default_ratio(quick_run):
    floor = quick_run["sections"]["floor"]
    assert set(floor["points"]) == {"native", "empty_default", "empty_kept", "tuple_default", "tuple_kept",
                                    "event_kept"}
    for name, p in floor["points"].items():
        assert p["rate"] > 0 and p["ns_per_event"] > 0, name
        assert p["received"] == p["events"], name
    assert floor["points"]["tuple_default"]["keep_thread_state"] is False
    assert floor["points"]["tuple_kept"]["keep_thread_state"] is True
    assert floor["ceiling_rate"] == floor["points"]["tuple_kept"]["rate"]
    for key in ("tuple_kept_over_default", "empty_kept_over_default", "event_over_tuple_kept",
                "ceiling_over_native"):
        assert floor["ratios"][key] > 0, key


def test_bridge_reports_throughput_latency_and_zero_loss_for_every_design_and_rate(quick_run):
    bridge = quick_run["sections"]["bridge"]
    assert bridge["rates"] == list(RATES)
    assert set(bridge["points"]) == set(DESIGNS)
    assert bridge["ceiling"]["rate"] > 0
    for design in DESIGNS:
        for rate in RATES:
            p = bridge["points"][design][rate]
            where = f"{design}@{rate}"
            assert p["design"] == design, where
            assert p["throughput"] > 0, where
            assert p["lost"] == 0 and p["gaps"] == 0, where
            assert p["consumed"] == p["produced"] > 1, where
            for key in LATENCY:
                assert key in p["latency"], (where, key)
            assert 0 <= p["latency"]["p50_us"] <= p["latency"]["p99_us"] <= p["latency"]["p999_us"] \
                <= p["latency"]["max_us"], where
            assert p["cpu_us_per_event"] > 0, where
    assert bridge["points"]["a0"]["full"]["keep_thread_state"] is False
    assert bridge["points"]["a"]["full"]["bridge"]["wakeups"] > 0
    for design in DESIGNS:  # the stand-in timed how long every design kept its thread inside the callback
        full = bridge["points"][design]["full"]
        assert full["dll_dwell"]["count"] >= full["produced"], design
    if "n" in DESIGNS:
        ring_stats = bridge["points"]["n"]["full"]["ring"]
        assert ring_stats["pushed"] == ring_stats["drained"] == bridge["points"]["n"]["full"]["produced"]
        # the floor under n's dwell: the stand-in timing an empty C callback at every rate
        assert set(bridge["dwell_floor"]) == set(RATES)
        for rate, dwell in bridge["dwell_floor"].items():
            assert dwell["count"] > 1 and 0 <= dwell["p50_us"] <= dwell["p99_us"] <= dwell["max_us"], rate
        assert "an empty C callback" in bridge["goals"]["native_dwell"]["figure"]


def test_bridge_ratios_and_goals_are_all_there(quick_run):
    bridge = quick_run["sections"]["bridge"]
    r = bridge["ratios"]
    for key in ("a_over_ceiling", "a_over_d_throughput", "a_over_a0_throughput", "a_over_b_throughput",
                "a_over_c_throughput"):
        assert r[key] > 0, key
    assert set(r["d_p99_over_a_p99"]) == set(RATES)
    goals = bridge["goals"]
    native = {"native_dwell", "native_vs_ceiling", "native_vs_process"} if "n" in DESIGNS else set()
    assert set(goals) == {"bridge_vs_floor", "throughput_vs_process", "p99_vs_process"} | native
    if native:
        assert r["n_over_ceiling"] > 0 and r["n_over_d_throughput"] > 0
    for name, g in goals.items():
        assert isinstance(g["met"], bool) and g["figure"] and g["target"], name
    assert set(quick_run["goals"]) == {f"bridge.{g}" for g in goals}


def test_switch_interval_points_are_measured_per_design(quick_run):
    switch = quick_run["sections"]["bridge"]["switch_interval"]
    assert switch["rate"] == 5000
    for design, by_si in switch["points"].items():
        assert set(by_si) == {"0.005", "0.001"}, design
        for si, p in by_si.items():
            assert p["switchinterval"] == pytest.approx(float(si)), (design, si)
            assert p["lost"] == 0 and p["p99_vs_default"] is not None


def test_table_output_without_json():
    proc = run_app("bench", "floor", "--quick", "--repeat", "1", timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "tuple_kept" in proc.stdout and "kept / default" in proc.stdout


@pytest.mark.slow
@pytest.mark.slow
@pytest.mark.slow
@pytest.mark.parametrize("fault,sections", [("crash", ["floor"]), ("crash:d", ["bridge"]), ("crash:c", ["bridge"]),
                                            ("gap", ["bridge"]), ("gap:d", ["bridge"])])
def test_an_injected_fault_fails_the_bench_with_an_error_and_no_numbers(fault, sections):
    proc = run_app("bench", *sections, "--quick", "--json", "--switch-intervals", "", timeout=120,
                   env={"HMARL_BENCH_FAULT": fault})
    assert proc.returncode != 0
    out = _json(proc)
    assert out["error"], out
    assert "sections" not in out and "goals" not in out
    assert out["injected_fault"] == fault
    if fault.startswith("gap"):
        assert "lost" in out["error"] and "gaps" in out["error"]
        if ":" in fault:
            assert f"design {fault[-1]} " in out["error"]
    else:
        assert "died" in out["error"] or "went away" in out["error"] or "never connected" in out["error"]
    assert "bench failed" in proc.stderr


def test_the_fault_option_also_fails_the_table_output():
    proc = run_app("bench", "bridge", "--quick", "--inject-fault", "gap", "--switch-intervals", "", timeout=120)
    assert proc.returncode != 0
    assert "bench failed" in proc.stderr and "lost" in proc.stderr
    assert "events/s" not in proc.stdout


def test_unknown_sections_are_a_clear_usage_error():
    proc = run_app("bench", "nosuch", "--quick", timeout=60)
    assert proc.returncode == 2
    assert "unknown bench section" in proc.stderr and "pipeline" in proc.stderr


@pytest.fixture(scope="module")
def quick_outputs() -> dict:
    return _quick("pipeline", "valkey", "zmq", "replay", timeout=300)


def test_pipeline_section_reports_rates_latency_cpu_rss_and_goals(quick_outputs):
    pipe = quick_outputs["sections"]["pipeline"]
    assert pipe["rates"][-1] == "full"
    assert pipe["paths"][0] == "ctypes" and set(pipe["points"]) == set(pipe["paths"])
    for path, rate in ((p, r) for p in pipe["paths"] for r in pipe["rates"]):
        o = pipe["points"][path][rate]
        assert o["bridge"] == path and o["dll_dwell"]["count"] > 0
        for key in ("trades_per_s", "events_per_s", "events_per_s_all_written", "cpu_percent", "rss_mb",
                    "bridge_max_depth", "valkey_max_backlog", "zmq_sent", "zmq_dropped"):
            assert key in o, (rate, key)
        assert set(o["callback_to_decision"]) == set(LATENCY)
        assert o["gaps"] == 0 and o["violations"] == 0 and o["trades"] > 0
        assert o["zmq_received_by_subscriber"] > 0  # a live subscriber really got the stream
        by = o["cpu_by_thread"]  # the loop's and the owner thread's share; the rest is the other threads'
        assert by["loop"] > 0 and by["owner"] >= 0 and by["other"] >= 0
        assert by["loop"] + by["owner"] <= o["cpu_percent"] + 1.0
        # the rest told apart (Linux; psutil counts in clock ticks, so a short point may show 0 for a thread)
        assert by["zmq"] >= 0 and by["files"] >= 0 and by["dll"] >= 0
        assert by["zmq"] + by["files"] + by["dll"] == pytest.approx(by["other"], abs=0.02) or by["dll"] == 0
    assert {"pipeline_throughput", "latency_at_5k"} <= set(pipe["goals"])


def test_valkey_zmq_and_replay_sections_report_their_rates(quick_outputs):
    sections = quick_outputs["sections"]
    vk = sections["valkey"]["median"]
    assert vk["steady_events_per_s"] > 0 and vk["catchup_events_per_s"] > 0 and vk["errors"] == 0
    assert vk["catchup_events"] == vk["events"]
    zq = sections["zmq"]["median"]
    assert zq["published_per_s"] > 0 and zq["received_by_subscriber"] + zq["dropped"] >= zq["sent"]
    rp = sections["replay"]
    assert rp["digests_agree"] is True and rp["compute_only"]["decisions"] == rp["live_decisions"]


@pytest.mark.parametrize("fault,section", [("crash", "pipeline"), ("gap", "pipeline"), ("crash", "valkey")])
def test_a_fault_in_an_end_to_end_section_fails_the_bench(fault, section):
    proc = run_app("bench", section, "--quick", "--json", timeout=180, env={"HMARL_BENCH_FAULT": fault})
    assert proc.returncode != 0
    out = _json(proc)
    assert out["error"] and "sections" not in out


@pytest.fixture(scope="module")
def quick_routing() -> dict:
    return _quick("routing", timeout=120)


def test_routing_section_times_decision_to_send_with_and_without_market_flow(quick_routing):
    r = quick_routing["sections"]["routing"]
    assert r["labels"] == ["none", "1000", "5000"]
    for label in r["labels"]:
        o = r["points"][label]
        lat = o["decision_to_send"]
        assert set(lat) == set(LATENCY), label
        # every order sent in the window was timed: the paced ones and the hierarchy's own
        assert lat["count"] + o["hierarchy_decision_to_send"]["count"] == o["sent"], label
        assert 0 < lat["count"] <= o["orders_paced"], label
        assert 0 < lat["p50_us"] <= lat["p99_us"] <= lat["p999_us"] <= lat["max_us"], label
        assert set(o["stages"]) == {"queue", "hop", "call"}, label
        assert o["refused"] + o["rejected"] <= o["orders"], label
    assert r["points"]["none"]["trades_per_s"] == 0  # the flow really stopped
    assert r["points"]["5000"]["trades_per_s"] > r["points"]["1000"]["trades_per_s"] > 0
    assert set(r["ratios"]["p99_us_over_no_flow"]) == {"1000", "5000"}
    g = r["goals"]["reported_under_load"]
    assert isinstance(g["met"], bool) and g["figure"] and g["target"]


@pytest.mark.parametrize("fault", ["crash", "gap"])
def test_a_fault_in_the_routing_section_fails_the_bench(fault):
    proc = run_app("bench", "routing", "--quick", "--json", timeout=120, env={"HMARL_BENCH_FAULT": fault})
    assert proc.returncode != 0
    out = _json(proc)
    assert "sections" not in out
    assert ("lost orders" if fault == "gap" else "died") in out["error"], out["error"]


@pytest.fixture(scope="module")
def quick_stages() -> dict:
    return _quick("stages", timeout=120)


def test_stages_section_names_every_stage_and_its_parts_add_up_to_the_loop(quick_stages):
    s = quick_stages["sections"]["stages"]
    names = [r["stage"] for r in s["rows"]]
    for stage in ("continuity", "market state (book + trade)", "specialist orderflow", "specialist liquidity",
                  "specialist tape", "specialist footprint", "regime", "learner: update",
                  "coordinator: blend + target", "executor (coordinator lane, paper)",
                  "encode_batch (inputs + outputs)", "journal append", "ZMQ publish", "Valkey enqueue"):
        assert stage in names, stage
    t = s["totals"]
    # the rows are self times: by construction they add up to on_batch, then drain, then the loop's wall time
    assert sum(r["us_per_event"] for r in s["rows"]) == pytest.approx(t["on_batch_us"])
    assert t["on_batch_us"] + t["drain_overhead_us"] == pytest.approx(t["drain_us"])
    assert t["drain_us"] + t["outside_us"] == pytest.approx(t["loop_us"])
    assert sum(r["of_loop"] for r in s["rows"]) == pytest.approx(t["on_batch_us"] / t["loop_us"])
    assert len(s["largest"]) == 3 and set(s["largest"]) <= set(names)
    assert s["instrumented"]["events_per_s"] > 0 and s["plain"]["events_per_s"] > 0
    w = s["wrapper_ns"]
    assert w["total"] > 0 and w["inside"] + w["outside"] == pytest.approx(w["total"], abs=0.2)
    assert s["digests_agree"] is True and s["decisions"] > 0 and s["lanes"] == ["coordinator"]
    assert s["batches"]["count"] > 0 and s["events"] > s["trades_recorded"]
    assert s["zmq"]["dropped"] == 0 and s["zmq"]["received_by_subscriber"] > 0
    # the same events back to back, 1 ms and 10 ms apart: every phase measured (no figure asserted: it is a bench)
    sp = s["spacing"]
    assert [g["gap_ms"] for g in sp["gaps"]] == [0.0, 1.0, 10.0] and sp["batch"] == 3
    for g in sp["gaps"]:
        assert g["on_batch_us"] > 0 and g["loop_us"] >= g["on_batch_us"] and len(g["runs_loop_us"]) == sp["rounds"]
    from app.feed.native import ring

    m = sp["machine"]  # the C walk beside it, wherever the ring was built
    assert (m is None) == (ring.get() is None)
    if m is not None:
        assert [(c["gap_ms"], c["spin"]) for c in m["pauses"]] == [(0.0, False), (1.0, False), (10.0, False),
                                                                   (10.0, True)]
        assert all(0 < c["median_us"] <= c["p90_us"] for c in m["pauses"])


def test_a_gap_in_the_fed_input_fails_the_stages_section():
    proc = run_app("bench", "stages", "--quick", "--json", timeout=120, env={"HMARL_BENCH_FAULT": "gap"})
    assert proc.returncode != 0
    out = _json(proc)
    assert "gaps" in out["error"] and "sections" not in out


def test_the_goals_in_events_per_second_are_judged_at_the_points_that_offer_that_many_events():
    """200 trades/s are ~450 events/s: the CPU and 5k latency goals are judged at the "200ev" / "5000ev" points,
    the trade-rate points of the same number quoted beside them; the table names those rows by events/s."""
    from app.bench import pipeline as bench_pipeline
    from app.bench.report import render_pipeline

    def point(events_s: float, cpu: float, p50: float) -> dict:
        lat = {"count": 10, "p50_us": p50, "p99_us": 900.0, "p999_us": 950.0, "max_us": 990.0}
        return {"trades_per_s": events_s / 2.2, "events_per_s": events_s, "events_per_s_all_written": events_s,
                "cpu_percent": cpu, "rss_mb": 60.0, "bridge_max_depth": 3, "valkey_max_backlog": 5,
                "zmq_sent": 9, "zmq_dropped": 0, "callback_to_decision": lat,
                "dll_dwell": {"p99_us": 1.0, "max_us": 9.0}}

    by_rate = {"200": point(450, 12.0, 400), "5000": point(11_000, 80, 390), "200ev": point(205, 4.5, 300),
               "5000ev": point(5_020, 40, 95), "full": point(30_000, 100, 5e6)}
    by_rate["200ev"]["cpu_by_thread"] = {"loop": 3.0, "owner": 0.5, "other": 1.0}
    points = {"ctypes": by_rate, "native": by_rate}
    goals = bench_pipeline.goals(points)
    assert goals["cpu_at_200"]["met"] and goals["cpu_at_200"]["value"] == 4.5
    assert "205 events/s" in goals["cpu_at_200"]["figure"] and "12.0 %" in goals["cpu_at_200"]["figure"]
    assert "loop thread 3.0, the DLL owner thread 0.5, the rest 1.0)" in goals["cpu_at_200"]["figure"]
    by_rate["200ev"]["cpu_by_thread"].update(zmq=0.4, files=0.1, dll=0.5)
    assert "the rest 1.0: ZeroMQ's I/O thread 0.4, the file thread 0.1, the DLL's own threads 0.5)" in \
        bench_pipeline.goals(points)["cpu_at_200"]["figure"]
    assert goals["latency_at_5k"]["met"] and "5,020 events/s" in goals["latency_at_5k"]["figure"]
    del by_rate["200ev"], by_rate["5000ev"]  # an older run's JSON: judged at the trade-rate points
    older = bench_pipeline.goals(points)
    assert not older["cpu_at_200"]["met"] and not older["latency_at_5k"]["met"]

    by_rate.update({"200ev": point(205, 4.5, 300)})
    lines: list[str] = []
    printer = type("P", (), {"table": lambda self, title, head, rows: lines.extend(r[0] for r in rows),
                             "line": lambda self, text="": None})()
    section = {"rates": ["200", "200ev", "full"], "paths": ["ctypes", "native"], "points": points, "goals": {}}
    render_pipeline(printer, section)  # type: ignore[arg-type]
    assert "native @ ~200 events/s" in lines and "ctypes @ 200" in lines


def test_the_cpu_split_tells_zeromqs_and_the_file_threads_apart():
    """What 'the rest' of the process's CPU is made of: ZeroMQ's I/O threads by their name, the loop's executor
    threads (aiofiles) by theirs; the bench counts what is left as the DLL's threads."""
    import asyncio

    import zmq

    from app.bench.pipeline import _helper_threads

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    sock.bind("tcp://127.0.0.1:0")
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(loop.run_in_executor(None, time.sleep, 0))  # starts the loop's executor thread
        kinds = sorted(set(_helper_threads().values()))
    finally:
        loop.close()
        sock.close(0)
        ctx.term()
    assert kinds == (["files", "zmq"] if sys.platform.startswith("linux") else ["files"])


def test_the_goal_points_keep_the_run_with_the_median_judged_figure(monkeypatch):
    """~200 and ~5,000 events/s are run --repeat times (paths interleaved); the run with the median CPU (200) or
    p50, then p99 (5,000) is kept, with every run's figures beside it. The workers are replaced by canned results: this is the
    bench's bookkeeping, the workers themselves run in the smoke tests above."""
    from app.bench import pipeline as bench_pipeline
    from app.bench.worker import Options

    cpu = iter([7.0, 6.6, 6.4, 6.6, 5.9, 6.5] + [40.0] * 6)
    # (p50, p99) of each run; the second path's runs tie on p50, and p99 picks the middle one
    lats = iter([(300.0, 600.0)] * 6 + [(229.0, 458.0), (197.0, 1180.0), (197.0, 394.0), (197.0, 721.0),
                                        (250.0, 500.0), (197.0, 786.0)])

    def fake_spawn(kind, params, timeout=900):
        if params["rate"] is None:
            c, p, p99 = 90.0, 1e6, 2e6
        elif params["rate"] < 150 or params["rate"] > 2000 and params["rate"] < 3000:
            c, (p, p99) = next(cpu), next(lats)
        else:
            c, p, p99 = 10.0, 150.0, 300.0
        lat = {"count": 9, "p50_us": p, "p99_us": p99, "p999_us": 3 * p, "max_us": 4 * p}
        return {"events": 22, "trades": 10, "events_per_s": 1.0, "events_per_s_all_written": 1.0, "cpu_percent": c,
                "callback_to_decision": lat, "dll_dwell": {"p50_us": 1.0, "p99_us": 1.0, "max_us": 9.0}}

    monkeypatch.setattr(bench_pipeline, "_spawn", fake_spawn)
    monkeypatch.setattr(bench_pipeline, "PACED_RATES", (200, 1000, 5000))  # fewer canned points, the same steps
    monkeypatch.setattr(bench_pipeline, "paths", lambda: ["ctypes", "native"])  # built or not: the workers are canned
    section = bench_pipeline.run(Options(repeat=3, quiet=0.0))
    by_path = {p: section["points"][p] for p in section["paths"]}
    first = "ctypes"  # the paths alternate: its runs are the 1st, 3rd and 5th
    assert by_path[first]["200ev"]["runs_cpu_percent"] == [7.0, 6.4, 5.9]
    assert by_path[first]["200ev"]["cpu_percent"] == 6.4
    assert by_path[first]["5000ev"]["runs_callback_to_decision"] == [[229.0, 458.0], [197.0, 394.0],
                                                                      [250.0, 500.0]]
    assert by_path[first]["5000ev"]["callback_to_decision"]["p50_us"] == 229.0
    second = by_path["native"]["5000ev"]
    assert second["runs_callback_to_decision"] == [[197.0, 1180.0], [197.0, 721.0], [197.0, 786.0]]
    assert second["callback_to_decision"]["p99_us"] == 786.0
    assert "runs" not in by_path[first]["1000"] and "runs_cpu_percent" not in by_path[first]["1000"]
    goals = section["goals"]
    assert "(the median of 3 runs: " in goals["cpu_at_200"]["figure"]
    assert "(the median of 3 runs by p50, then p99; p50/p99 of each: " in goals["latency_at_5k"]["figure"]
