"""MCP servers as tools, against real servers (tests/mcp_servers.py): stdio and streamable
HTTP, one long-lived session, a crash mid-call, servers that never start, the call timeout.
No pytest-asyncio: graph/tools/mcp.py runs its own loop in a thread; the tools are synchronous.
"""

import contextlib
import dataclasses
import gc
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from graph.config import McpServer
from graph import context as contexts
from graph.context import Context
from graph.tools import mcp
from tooling import call

SERVER = str(Path(__file__).resolve().parent / "mcp_servers.py")


def stdio(mode: str = "stdio") -> dict:
    return {"command": sys.executable, "args": [SERVER, mode]}


def context(tmp_path, make_config, servers: dict, **mcp_settings) -> Context:
    path = make_config({"mcpServers": servers, "tools": {"browser": {"enabled": False}, "mcp": mcp_settings}})
    return Context(home=str(tmp_path / "home"), config=str(path))


def by_name(ctx, notify=None, **kw) -> dict:
    return {t.name: t for t in mcp.tools(ctx, notify or (lambda line: pytest.fail(line)), **kw)}


def whoami(tool, ctx) -> dict:
    return dict(part.split("=") for part in call(tool, ctx).text.split())


def test_stdio_server_keeps_one_session(tmp_path, make_config):
    ctx = context(tmp_path, make_config, {"calc": stdio()})
    tools = by_name(ctx)
    assert set(tools) == {"add", "whoami", "crash", "slow", "fail"}
    assert tools["add"].metadata == {"source": "mcp:calc", "untrusted": True}
    assert tools["add"].tool_call_schema["required"] == ["a", "b"]
    assert call(tools["add"], ctx, a=2, b=40).text == "42"
    first, second = whoami(tools["whoami"], ctx), whoami(tools["whoami"], ctx)
    assert first["pid"] == second["pid"] and first["session"] == second["session"]
    assert (first["calls"], second["calls"]) == ("1", "2")
    # a later turn, even with a new Context of the session's (a sub-agent's), reuses the running server
    again = by_name(dataclasses.replace(ctx, interactive=False))
    assert whoami(again["whoami"], ctx)["pid"] == first["pid"]
    failed = call(tools["fail"], ctx)  # a tool error is an observation, not a crash
    assert failed.status == "error" and "this tool always fails" in failed.text
    assert mcp.servers(ctx) == [{"name": "calc", "kind": "stdio", "status": "running", "tools": 5, "error": ""},
                                {"name": "browser", "kind": "stdio", "status": "disabled", "tools": 0, "error": ""}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, SERVER, "http", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


def test_streamable_http_server(tmp_path, make_config, http_server):
    ctx = context(tmp_path, make_config, {"remote": {"url": http_server, "headers": {"X-Test": "1"}}})
    tools = by_name(ctx)
    assert call(tools["add"], ctx, a=1, b=2).text == "3"
    first, second = whoami(tools["whoami"], ctx), whoami(tools["whoami"], ctx)
    assert first["session"] == second["session"]  # one MCP session, not one per call
    assert mcp.servers(ctx)[0] == {"name": "remote", "kind": "http", "status": "running", "tools": 5, "error": ""}


def test_crash_mid_call_restarts_the_server(tmp_path, make_config):
    ctx = context(tmp_path, make_config, {"fragile": stdio()})
    tools = by_name(ctx)
    before = whoami(tools["whoami"], ctx)["pid"]
    crashed = call(tools["crash"], ctx)  # dies, is restarted once, the retry dies too
    assert crashed.status == "error"
    assert re.search(r"MCP tool crash on server fragile failed: the server stopped .*restarted", crashed.text)
    after = whoami(tools["whoami"], ctx)  # the next call restarts it and works
    assert after["pid"] != before and after["calls"] == "1"
    assert call(tools["add"], ctx, a=1, b=1).text == "2"
    assert mcp.servers(ctx)[0]["status"] == "running"


def test_servers_that_never_start(tmp_path, make_config):
    ctx = context(tmp_path, make_config, {
        "good": stdio(), "missing": {"command": "no-such-mcp-server-here"}, "mute": stdio("hang"),
        "quits": {"command": sys.executable, "args": ["-c", "import sys; sys.exit('bad API key')"]},
        "off": {**stdio(), "disabled": True}}, start_timeout_s=2)
    lines = []
    tools = by_name(ctx, lines.append)
    assert sorted(lines) == [
        ("MCP server missing did not start: [Errno 2] No such file or directory: 'no-such-mcp-server-here'; "
         "going on without it"),
        "MCP server mute did not start: no answer within 2 s; going on without it",
        "MCP server quits did not start: Connection closed (it said: bad API key); going on without it"]
    assert call(tools["add"], ctx, a=2, b=2).text == "4"  # the others work
    assert by_name(ctx, lines.append) and len(lines) == 3  # not retried (nor re-announced) every turn
    status = {s["name"]: s["status"] for s in mcp.servers(ctx)}
    assert status == {"good": "running", "missing": "failed", "mute": "failed", "quits": "failed",
                      "off": "disabled", "browser": "disabled"}
    leftovers = [p for p in psutil.Process().children(recursive=True) if p.cmdline()[-2:] == [SERVER, "hang"]]
    assert leftovers == []  # the mute server was stopped, not left behind


def test_a_session_dropped_unclosed_still_ends_its_servers(tmp_path, make_config):
    ctx = context(tmp_path, make_config, {"calc": stdio()})
    pid = int(whoami(by_name(ctx)["whoami"], ctx)["pid"])
    del ctx
    gc.collect()  # its front end let the session go without closing it
    assert psutil.pid_exists(pid)
    contexts.close_all()  # as at exit
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(timeout=10)  # psutil.TimeoutExpired: the server was left running


def test_call_timeout(tmp_path, make_config):
    ctx = context(tmp_path, make_config, {"calc": stdio()}, call_timeout_s=0.5)
    tools = by_name(ctx)
    pid = whoami(tools["whoami"], ctx)["pid"]
    late = call(tools["slow"], ctx, seconds=5)
    assert late.status == "error" and late.text == "MCP tool slow on server calc took longer than 0.5 s"
    assert call(tools["slow"], ctx, seconds=0).text == "slept 0.0"  # the session is still usable
    assert whoami(tools["whoami"], ctx)["pid"] == pid


def test_name_clashes_get_the_server_prefix(tmp_path, make_config):
    ctx = context(tmp_path, make_config, {"one": stdio(), "two": stdio()})
    names = set(by_name(ctx, taken=set()))
    assert {"one_add", "two_add", "one_whoami", "two_whoami"} <= names and "add" not in names
    ctx.services.close()
    ctx = context(tmp_path, make_config, {"calc": stdio()})
    names = set(by_name(ctx, taken={"add"}))  # a built-in tool's name
    assert "calc_add" in names and "whoami" in names


def test_mcpservers_entries_become_connections(monkeypatch):
    monkeypatch.setenv("PATH", "/some/bin")
    local, missing = mcp._connection(McpServer(command="uvx", args=["srv"], env={"TOKEN": "t"}, cwd="/tmp"))
    assert local["transport"] == "stdio" and local["args"] == ["srv"] and local["cwd"] == "/tmp"
    assert local["env"]["TOKEN"] == "t" and local["env"]["PATH"] == "/some/bin" and missing == ""
    remote, _ = mcp._connection(McpServer(url="https://x.example/mcp", headers={"Authorization": "Bearer k"}))
    assert remote == {"transport": "streamable_http", "url": "https://x.example/mcp",
                      "headers": {"Authorization": "Bearer k"}}
    assert mcp._connection(McpServer(url="http://h/sse", type="sse"))[0]["transport"] == "sse"


def test_variables_are_expanded_in_env_headers_and_url(tmp_path, make_config, http_server, monkeypatch):
    monkeypatch.setenv("TEST_SECRET", "s3cr3t")
    monkeypatch.setenv("TEST_MCP_URL", http_server)
    monkeypatch.delenv("TEST_UNSET_HEADER", raising=False)
    ctx = context(tmp_path, make_config, {
        "local": {**stdio(), "env": {"MCP_TEST_TOKEN": "key-${TEST_SECRET}"}},
        "remote": {"url": "${TEST_MCP_URL}", "headers": {"X-Test": "${TEST_UNSET_HEADER:-fallback}"}}})
    tools = by_name(ctx)
    assert whoami(tools["local_whoami"], ctx)["token"] == "key-s3cr3t"
    assert whoami(tools["remote_whoami"], ctx)["header"] == "fallback"
    assert "s3cr3t" not in ctx.config and "${TEST_SECRET}" in open(ctx.config, encoding="utf-8").read()


def test_an_unset_variable_fails_only_its_server(tmp_path, make_config, monkeypatch):
    monkeypatch.delenv("TEST_NEVER_SET", raising=False)
    ctx = context(tmp_path, make_config, {"calc": stdio(), "keyed": {**stdio(), "env": {"KEY": "${TEST_NEVER_SET}"}}})
    lines = []
    tools = by_name(ctx, lines.append)
    assert lines == ["MCP server keyed did not start: the environment variable TEST_NEVER_SET (in its entry) "
                     "is not set; going on without it"]
    assert call(tools["add"], ctx, a=1, b=2).text == "3"
    assert {s["name"]: s["status"] for s in mcp.servers(ctx)}["keyed"] == "failed"
