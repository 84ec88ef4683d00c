"""`python -m app bench`: measurements of the hot path, every comparison measured side by side in one run.

Each measured configuration runs in a child process of its own (`python -m app.bench.worker CONFIG_JSON`): the
DLL (and its stand-in) can be initialized once per process, and a fresh process keeps one point's garbage,
threads and thread states out of the next. The parent (the section modules, floor.py and bridge.py) runs the
points one after another, never in parallel, and turns their JSON lines into tables, ratios and goals.

The section registry lives in app/commands/bench.py (`SECTIONS`); this package stays free of imports so that the
worker starts with nothing but what it measures.
"""
