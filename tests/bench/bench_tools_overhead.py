"""What tools cost per call: the registry and approval gate run before every model step and
tool call, and MCP calls go through one long-lived session per server.

    python tests/bench/bench_tools_overhead.py [--calls 30]

Prints medians (and p95) of:
- `tools.available(ctx)` (built-in + self-made + running MCP servers) and `approval.check`;
- an MCP tool call (`add` on the FastMCP test server over stdio) through our long-lived
  session, against the naive way of langchain-mcp-adapters (`MultiServerMCPClient.get_tools()`
  then a call: a new session, and a new server process, for every call), with the ratio.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from graph import approval, tools  # noqa: E402
from graph.context import Context  # noqa: E402
from timing import p95, timed  # noqa: E402  (tests/bench/timing.py)

SERVER = {"command": sys.executable, "args": [str(ROOT / "tests" / "mcp_servers.py"), "stdio"]}


def show(label: str, ms: list[float]) -> float:
    median = statistics.median(ms)
    print(f"{label:58} median {median:8.2f} ms   p95 {p95(ms):8.2f} ms")
    return median


def naive_call() -> None:
    from langchain_mcp_adapters.client import MultiServerMCPClient

    async def once():
        client = MultiServerMCPClient({"calc": {"transport": "stdio", **SERVER}})
        add = next(t for t in await client.get_tools() if t.name == "add")
        await add.ainvoke({"a": 2, "b": 40})

    asyncio.run(once())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=30)
    n = parser.parse_args().calls
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump({"mcpServers": {"calc": SERVER}, "tools": {"browser": {"enabled": False}}}))
        ctx = Context(home=str(Path(tmp) / "home"), config=str(config), cwd=tmp)
        start = time.perf_counter()
        by_name = {t.name: t for t in tools.available(ctx)}
        print(f"first tools.available (starts the MCP server): {(time.perf_counter() - start) * 1000:.0f} ms")
        show("tools.available(ctx), later calls", timed(lambda: tools.available(ctx), n))
        run = by_name["run_command"]
        show("approval.check(run_command)", timed(lambda: approval.check(ctx, run, {"command": "ls -la"}), n))
        add = by_name["add"]
        ours = show("MCP call through the long-lived session", timed(lambda: add.invoke({"a": 2, "b": 40}), n))
        naive = show("MCP call with a new session per call (get_tools + call)", timed(naive_call, max(5, n // 3)))
        print(f"ratio new-session / long-lived: {naive / ours:.0f}x")
        ctx.services.close()


if __name__ == "__main__":
    main()
