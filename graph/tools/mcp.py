"""MCP servers as tools: the `mcpServers` of config.yaml and the built-in browser (Playwright MCP).

Owns: turning mcpServers entries (command/args/env/cwd: stdio; url: streamable HTTP, or SSE
with `type: sse`) into connections, with `${VAR}` / `${VAR:-default}` in `env`, `headers` and
`url` taken from the environment (an unset one fails that server, naming it); one long-lived
session per server and agent session (a `Manager` per configuration, kept in the session's
services and closed with them), opened lazily on the first `tools()` call, all servers in
parallel, on one background asyncio loop for the whole process; wrapping each MCP tool as a
synchronous LangChain tool with a per-call timeout; restarting a server once when it dies
during a call; the built-in browser's command and config file; `servers()` for the `tools` command.
A server that fails to start costs one `notify` line and is not retried until the next
process start. A stdio server's stderr goes to DATA/logs/mcp-NAME.log, not the terminal.
Does not own: which tools a run may use (tools/__init__.py) or how untrusted output is
shown to the model (nodes/act.py).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from langchain_core.tools import BaseTool, StructuredTool, ToolException

from graph.context import Context
from graph.environment import expand

log = logging.getLogger(__name__)
BROWSER_DIR = Path(__file__).resolve().parent / "browser"
BROWSER_CLI = BROWSER_DIR / "node_modules" / "@playwright" / "mcp" / "cli.js"  # the package's "bin"
CHROMIUM_NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "msedge"]
CHROMIUM_ARGS = ["--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
HIDDEN = {"browser": {"browser_run_code_unsafe"}}  # runs any code inside the node process: never offered

# One loop per process, not per session: a thread that only waits, and MCP's client sessions
# (anyio task groups) must be closed on the loop that opened them, whichever session ends first.
_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


class _Late(Exception):
    """The MCP loop did not finish the job in time."""


def _run(coro, timeout: float):
    """Run `coro` on the process's MCP loop (started on first use) and wait for its result."""
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="mcp-loop", daemon=True).start()
    future = asyncio.run_coroutine_threadsafe(coro, _loop)
    try:
        return future.result(timeout)
    except TimeoutError:
        future.cancel()
        raise _Late from None


def _reason(exc: BaseException) -> str:
    """An error in one line, dug out of anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return " ".join(str(exc).split()) or type(exc).__name__


def _text(result, tool: str) -> str:
    """A CallToolResult as text: the text blocks joined, other blocks described briefly."""
    parts = []
    for block in result.content:
        if block.type == "text":
            parts.append(block.text)
        elif block.type == "resource" and hasattr(block.resource, "text"):
            parts.append(block.resource.text)
        else:
            parts.append(f"[{block.type} ({getattr(block, 'mimeType', None) or getattr(block, 'uri', '')}) not shown]")
    if not parts and result.structuredContent is not None:
        parts.append(json.dumps(result.structuredContent, ensure_ascii=False))
    if result.isError:
        raise ToolException("\n".join(parts) or f"MCP tool {tool} failed")
    return "\n".join(parts)


class Server:
    """One MCP server and its session, held open by a task on the MCP loop."""

    def __init__(self, name: str, connection: dict | None, home: Path, status: str = "not started", error: str = ""):
        self.name, self.connection, self.status, self.error = name, connection, status, error
        self.kind = "http" if (connection or {}).get("transport", "stdio") != "stdio" else "stdio"
        self.errlog = home / "logs" / f"mcp-{name}.log"
        self.tools: list[BaseTool] = []  # as loaded by langchain-mcp-adapters: names, descriptions, schemas
        self.session = None
        self.generation = 0  # counts (re)starts, so that calls failing together restart it once
        self.restart_lock = threading.Lock()
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    @asynccontextmanager
    async def _open(self):
        if self.kind == "http":
            from langchain_mcp_adapters.client import MultiServerMCPClient

            async with MultiServerMCPClient({self.name: self.connection}).session(self.name) as session:
                yield session
            return
        from mcp import ClientSession, StdioServerParameters  # the SDK directly: the adapter cannot redirect stderr
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(**{k: v for k, v in self.connection.items() if k != "transport"})
        self.errlog.parent.mkdir(parents=True, exist_ok=True)
        mode = "w" if self.errlog.exists() and self.errlog.stat().st_size > 1_000_000 else "a"
        with open(self.errlog, mode, encoding="utf-8") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                yield session

    async def _hold(self, ready: asyncio.Future) -> None:
        """Open the session, hand it over through `ready`, keep it open until stopped."""
        from langchain_mcp_adapters.tools import load_mcp_tools

        try:
            async with self._open() as session:
                tools = await load_mcp_tools(session, server_name=self.name)
                ready.set_result((session, [t for t in tools if t.name not in HIDDEN.get(self.name, ())]))
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - goes to start(); after that, the next call fails
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(_reason(exc)))

    async def start(self, timeout: float) -> None:
        ready = asyncio.get_running_loop().create_future()
        logged = self.errlog.stat().st_size if self.errlog.exists() else 0
        self._stop, self._task = asyncio.Event(), asyncio.create_task(self._hold(ready))
        try:
            self.session, self.tools = await asyncio.wait_for(asyncio.shield(ready), timeout)
        except BaseException as exc:
            ready.cancel()
            self._task.cancel()
            with suppress(BaseException):
                await asyncio.wait_for(self._task, 10)
            self.status, self.session = "failed", None
            self.error = f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError) else _reason(exc)
            if self.kind == "stdio" and self.errlog.exists():  # what the server said on stderr, if anything
                with open(self.errlog, "rb") as errlog:
                    errlog.seek(logged if errlog.seek(0, 2) >= logged else 0)  # (the log may have been cut)
                    said = errlog.read()[-300:].decode("utf-8", "replace").split()
                self.error += f" (it said: {' '.join(said)})" if said else ""
            raise
        self.status, self.error, self.generation = "running", "", self.generation + 1

    async def stop(self) -> None:
        if self._task and not self._task.done():
            self._stop.set()
            with suppress(BaseException):
                await asyncio.wait_for(self._task, 10)
        self.session = None

    async def restart(self, timeout: float) -> None:
        await self.stop()
        await self.start(timeout)


def _connection(entry) -> tuple[dict, str]:
    """An mcpServers entry as a langchain-mcp-adapters connection, with `${VAR}` expanded in its
    env, headers and url; and what is missing ('' when nothing): an unset variable."""
    transport = ("sse" if entry.type == "sse" else "streamable_http") if entry.url else "stdio"
    try:
        env = {key: expand(value) for key, value in entry.env.items()}
        headers = {key: expand(value) for key, value in entry.headers.items()}
        url = expand(entry.url)
    except KeyError as exc:
        return {"transport": transport}, f"the environment variable {exc.args[0]} (in its entry) is not set"
    if entry.url:
        return {"transport": transport, "url": url, "headers": headers or None}, ""
    return {"transport": transport, "command": entry.command, "args": entry.args, "cwd": entry.cwd or None,
            "env": {**os.environ, **env}}, ""


def _browser(ctx: Context) -> tuple[dict | None, str]:
    """The built-in browser's stdio connection (writing its config file), or what is missing."""
    settings, folder = ctx.settings.tools.browser, Path(ctx.home) / "browser"
    node = shutil.which("node")
    if not node:
        return None, "the browser needs Node.js 20 or newer on PATH (install nodejs)"
    if not BROWSER_CLI.exists():
        return None, f"Playwright MCP is not installed (run `npm ci --prefix {BROWSER_DIR}`)"
    wanted = [os.path.expanduser(settings.executable)] if settings.executable else CHROMIUM_NAMES
    exe = next((found for name in wanted if (found := shutil.which(name))), None)
    if not exe:
        return None, (f"tools.browser.executable: no such program {wanted[0]}" if settings.executable else
                      "no Chromium found (install chromium, or set tools.browser.executable)")
    config = {"browser": {"browserName": "chromium", "isolated": True, "launchOptions": {
        "executablePath": exe, "headless": settings.headless, "chromiumSandbox": False, "args": CHROMIUM_ARGS}},
        "outputDir": str(folder / "output"), "outputMaxSize": 50_000_000}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return {"transport": "stdio", "command": node, "args": [str(BROWSER_CLI), "--config", str(folder / "config.json")],
            "cwd": str(folder), "env": {**os.environ, "XDG_CACHE_HOME": str(folder / "cache")}}, ""


def _server(name: str, entry, home: Path) -> Server:
    connection, missing = _connection(entry)
    return Server(name, connection, home, "disabled" if entry.disabled else "failed" if missing else "not started",
                  missing)


class Manager:
    """The servers of one configuration, started together on first use."""

    def __init__(self, ctx: Context):
        self.settings, home = ctx.settings.tools.mcp, Path(ctx.home)
        # the built-in browser offers the configured subset; a user's own "browser" server offers all
        self.browser_tools = ["*"] if "browser" in ctx.settings.mcpServers else ctx.settings.tools.browser.tools
        self.servers = {name: _server(name, entry, home) for name, entry in ctx.settings.mcpServers.items()}
        if "browser" not in self.servers:  # an mcpServers entry named browser replaces the built-in one
            connection, missing = _browser(ctx) if ctx.settings.tools.browser.enabled else (None, "")
            status = "not started" if connection else "failed" if missing else "disabled"
            self.servers["browser"] = Server("browser", connection, home, status, missing)
        self.started, self.lock, self.wrapped = False, threading.Lock(), {}

    def start(self, notify: Callable[[str], None], taken: set[str]) -> None:
        with self.lock:
            if self.started:
                return
            self.started, timeout = True, self.settings.start_timeout_s
            offered = self.browser_tools
            pending = [s for s in self.servers.values() if s.status == "not started"]

            async def start_all():
                await asyncio.gather(*(s.start(timeout) for s in pending), return_exceptions=True)

            with suppress(_Late):
                _run(start_all(), timeout + 30)
            for server in self.servers.values():
                if server.status not in ("running", "disabled"):
                    server.status = "failed"
                    notify(f"MCP server {server.name} did not start: {server.error or 'no answer'}; going on without it")
            names = [t.name for s in self.servers.values() for t in s.tools]
            for server in self.servers.values():
                for tool in server.tools:
                    if server.name == "browser" and not any(fnmatch.fnmatchcase(tool.name, p) for p in offered):
                        continue
                    clash = names.count(tool.name) > 1 or tool.name in taken
                    name = f"{server.name}_{tool.name}" if clash else tool.name
                    self.wrapped[name] = self._wrap(server, tool, name)

    def close(self) -> None:
        """Close every server's session and the process behind it (the agent session ends)."""
        running = [s for s in self.servers.values() if s.session is not None]
        if running:
            async def stop_all():
                await asyncio.gather(*(s.stop() for s in running), return_exceptions=True)

            with suppress(Exception):
                _run(stop_all(), 20)

    def _wrap(self, server: Server, tool: BaseTool, name: str) -> BaseTool:
        def run(**args) -> str:
            return self.call(server, tool.name, args)

        return StructuredTool(name=name, description=tool.description or name, args_schema=tool.args_schema,
                              func=run, metadata={"source": f"mcp:{server.name}", "untrusted": True},
                              handle_tool_error=True)

    def call(self, server: Server, tool: str, args: dict) -> str:
        """Call `tool` on the server's session; if the session broke, restart the server once and retry once."""
        timeout, where, first = self.settings.call_timeout_s, f"MCP tool {tool} on server {server.name}", ""
        for attempt in (1, 2):
            session, generation = server.session, server.generation
            if session is None:
                raise ToolException(f"MCP server {server.name} is not running ({server.error or 'stopped'})")
            try:
                return _text(_run(session.call_tool(tool, args), timeout), tool)
            except _Late:
                raise ToolException(f"{where} took longer than {timeout:g} s") from None
            except ToolException:
                raise
            except Exception as exc:  # the session broke: the server died or the connection dropped
                if attempt == 2:
                    raise ToolException(f"{where} failed: the server stopped ({first}), was restarted, "
                                        f"and stopped again ({_reason(exc)})") from None
                first = _reason(exc)
                with server.restart_lock:
                    if server.generation == generation:  # nobody restarted it meanwhile
                        log.warning("MCP server %s stopped (%s); restarting it", server.name, first)
                        with suppress(Exception):
                            _run(server.restart(self.settings.start_timeout_s), self.settings.start_timeout_s + 30)
                if server.session is None:
                    raise ToolException(f"{where} failed ({first}) and the server did not restart: "
                                        f"{server.error or 'no answer'}") from None
        raise AssertionError("unreachable")

    def tools(self) -> list[BaseTool]:
        return [t for t in self.wrapped.values()
                if self.servers[t.metadata["source"].removeprefix("mcp:")].status == "running"]


def _manager(ctx: Context) -> Manager:
    """The session's one Manager for ctx's configuration (and data folder)."""
    s = ctx.settings
    key = json.dumps([ctx.home, s.tools.mcp.model_dump(), s.tools.browser.model_dump(),
                      {name: entry.model_dump() for name, entry in s.mcpServers.items()}], sort_keys=True)
    return ctx.services.get(f"mcp:{key}", lambda: Manager(ctx))


def tools(ctx: Context, notify: Callable[[str], None] | None = None, taken: set[str] | None = None) -> list[BaseTool]:
    """The tools of every enabled MCP server and the built-in browser, starting the servers
    on the first call; `notify` gets one line per server that did not start (once).
    `taken`: names of other tools (default: the built-in ones); a clash gets the prefix SERVER_."""
    if taken is None:
        from graph.tools import builtin

        taken = {t.name for t in builtin()}
    manager = _manager(ctx)
    manager.start(notify or log.warning, set(taken))
    return manager.tools()


def servers(ctx: Context, start: bool = False) -> list[dict]:
    """One row per server for the `tools` command: name, kind, status, tools, error.
    With `start`, the servers are started first, as the first turn would."""
    if start:
        tools(ctx, lambda _line: None)
    return [{"name": s.name, "kind": s.kind, "status": s.status, "tools": len(s.tools) if s.status == "running" else 0,
             "error": s.error} for s in _manager(ctx).servers.values()]
