"""A small FastMCP server for the MCP tests, runnable as a script:

    python tests/mcp_servers.py stdio           # speaks MCP on stdin/stdout
    python tests/mcp_servers.py http PORT       # streamable HTTP on 127.0.0.1:PORT/mcp

Tools: `add`; `whoami` (pid, session and a per-process call counter: the same pid and
session and a rising counter prove the client keeps one session; also the server's
MCP_TEST_TOKEN variable and the request's X-Test header, as the client configured them); `crash` (the process
exits mid-call); `slow` (sleeps); `fail` (a tool error the model should see).
`python tests/mcp_servers.py hang` starts and never speaks MCP (a server that never starts).
"""

from __future__ import annotations

import os
import sys
import time

from mcp.server.fastmcp import Context, FastMCP

server = FastMCP("testing", host="127.0.0.1", log_level="WARNING")
calls = 0


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool()
def whoami(ctx: Context) -> str:
    """This server's process id, the client session's id and how many times whoami was called."""
    global calls
    calls += 1
    request = getattr(ctx.request_context, "request", None)  # HTTP only
    header = request.headers.get("x-test", "-") if request is not None else "-"
    return (f"pid={os.getpid()} session={id(ctx.session)} calls={calls} "
            f"token={os.environ.get('MCP_TEST_TOKEN', '-')} header={header}")


@server.tool()
def crash() -> str:
    """Exit the server process in the middle of the call."""
    os._exit(3)


@server.tool()
async def slow(seconds: float) -> str:
    """Sleep for `seconds`, then answer."""
    import anyio

    await anyio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def fail() -> str:
    """Always fails with a tool error."""
    raise ValueError("this tool always fails")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "http":
        server.settings.port = int(sys.argv[2])
        server.run("streamable-http")
    elif mode == "hang":  # a process that starts but never speaks MCP
        time.sleep(3600)
    else:
        server.run("stdio")
