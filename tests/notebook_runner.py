"""Execute a notebook's code cells in order inside one running asyncio loop, the way Jupyter's kernel does
(top-level `await` allowed), and print the value of each cell's last expression as one JSON line per cell."""
from __future__ import annotations

import ast
import asyncio
import json
import sys
import threading
import types


async def execute(path: str) -> list[str]:
    nb = json.load(open(path, encoding="utf-8"))
    namespace: dict = {"__name__": "__notebook__"}
    results = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        tree = ast.parse(source, mode="exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        code = compile(tree, path, "exec", flags=flags)
        value = eval(code, namespace)
        if isinstance(value, types.CoroutineType):
            await value
        if last is not None:
            value = eval(compile(last, path, "eval", flags=flags), namespace)
            if isinstance(value, types.CoroutineType):
                value = await value
        results.append(repr(value) if last is not None else "")
    return results


def main() -> None:
    loop_kind = type(asyncio.new_event_loop()).__module__
    results = asyncio.run(execute(sys.argv[1]))
    print(json.dumps({"cells": results, "loop": loop_kind,
                      "threads": sorted(t.name for t in threading.enumerate())}))


if __name__ == "__main__":
    main()
