"""The runtime context: what LangGraph hands to every node as `runtime.context`.

Owns: the `Context` dataclass (the data folder, the config file, the flags that override
settings, the sub-agent limits, and the settings read from the config on first use), the
session's `Services` it carries (built once per session, shared by every Context made from it,
closed with it), the one Context of a graph run given none (`of`), locating the data folder
(`--home` > `AGENT_HOME` > `data/` beside agent.py) and the one thread id of the endless session.
Does not own: the config schema and loading it (config.py), reading the environment
(environment.py), or what the services hold: the Store (store.py), the chat
backends (models/llm.py), the memories (memory/memories.py), the MCP sessions (tools/mcp.py).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from graph.config import DEFAULT_CONFIG, ROOT, Settings, load
from graph.store import Store

THREAD_ID = "main"  # the one endless session
T = TypeVar("T")


class Services:
    """What one session builds once and every Context of it shares (a sub-agent's, a copy made
    with dataclasses.replace): the stop signal, and named slots that their owners fill on first
    use (`get`) while this holder only keeps them: "store" (`Context.store`), "backend" and "adapted:…"
    (models/llm.py; a test puts its scripted model in "backend"), "memories:…"
    (memory/memories.py), "mcp:…" (tools/mcp.py). `close()` closes what was opened, newest
    first. Thread-safe."""

    def __init__(self) -> None:
        # set by Ctrl-C in the REPL or the web's stop: the answer being written and a running command stop
        self.stop = threading.Event()
        self._held: dict[str, Any] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._lock = threading.Lock()

    def lock(self, name: str) -> threading.RLock:
        """The lock its owner builds or replaces the slot `name` under (one per slot: loading the
        memory's embedder does not hold up the store)."""
        with self._lock:
            return self._locks.setdefault(name, threading.RLock())

    def get(self, name: str, build: Callable[[], T]) -> T:
        """What the slot `name` holds, built by `build` on its first use (once, whatever the threads)."""
        held = self._held.get(name)
        if held is None:
            with self.lock(name):
                held = self._held.get(name)
                if held is None:
                    held = self._held[name] = build()
                    _open.add(self)
        return held

    def peek(self, name: str) -> Any:
        """What the slot holds, or None (nothing is built)."""
        return self._held.get(name)

    def put(self, name: str, value: Any) -> None:
        """Fill or replace the slot (a fallback backend, a test's scripted model)."""
        with self._lock:
            self._held[name] = value
        _open.add(self)

    def close(self) -> None:
        """Close what the slots hold that can be closed (an indexing thread, MCP processes, the
        database), newest first; the next `get` opens them again."""
        with self._lock:
            held, self._held = list(self._held.values()), {}
        _open.discard(self)
        for each in reversed(held):
            if callable(getattr(each, "close", None)):
                each.close()


# The services that hold something, from their first slot until closed: atexit and the tests'
# teardown close their MCP processes (and browser), indexing threads and databases through it.
# Held strongly: services dropped unclosed by their Context would leave those processes running.
_open: set[Services] = set()


@atexit.register
def close_all() -> None:
    """Close every session's services (at exit; between tests) and forget the default Context."""
    global _default, _serving
    for services in list(_open):
        services.close()
    _default, _serving = None, False


def default_home() -> Path:
    return Path(os.environ.get("AGENT_HOME") or ROOT / "data").expanduser().resolve()


@dataclass
class Context:
    """What every node needs to know about this run. All fields are optional so
    LangGraph Studio (which may pass no context) gets the same defaults as the CLI."""

    home: str = ""
    config: str = ""
    backend: str = ""
    think: str = ""  # auto | on | off: overrides reasoning.mode (--think, /think)
    # Can the user be asked (approve a command)? False for -m, piped stdin and sub-agents:
    # a tool that needs approval is then refused with a message saying why.
    interactive: bool = True
    cwd: str = ""  # the default workspace root for files and commands ('': where the agent was started)
    only_tools: tuple[str, ...] | None = None  # a sub-agent's subset of tools (None: all)
    parent_turn: str = ""  # a sub-agent's parent user message id: its messages join that turn
    max_rounds: int = 0  # a sub-agent's turn budget (0: agent.max_tool_rounds)
    # where each set key came from (the config file, an environment variable, a flag), read with the settings
    origins: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    # the uncompiled agent graph that `delegate` runs a sub-agent on, put here by builder.py (the tools
    # cannot import the graph: it imports them); None until the graph has run, and for a sub-agent
    agent_graph: Any = field(default=None, init=False, repr=False, compare=False)
    # where the nodes' events go (`writer`) while the session runs the graph in its own thread
    # (session.py); None: to LangGraph's "custom" stream (Studio), and always for a sub-agent
    events: Any = field(default=None, init=False, repr=False, compare=False)
    # the session's Services (typed Any: LangGraph's server derives a JSON schema from this class);
    # None: a new session's, or the served session's when LangGraph's server built this Context
    # from a run's JSON for the data folder it serves
    services: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._named_config = bool(self.config)
        self.home = str(Path(self.home).expanduser().resolve() if self.home else default_home())
        self.config = str(Path(self.config).expanduser().resolve() if self.config else DEFAULT_CONFIG)
        if self.services is None:
            served = _default if _serving and _default is not None and _default.home == self.home else None
            self.services = served.services if served else Services()

    @property
    def store(self) -> Store:
        """The data folder's Store: one connection per session, opened on first use."""
        return self.services.get("store", lambda: Store(Path(self.home)))

    @property
    def stop(self) -> threading.Event:
        """The session's stop signal (Ctrl-C): set, the answer being written and a running command stop."""
        return self.services.stop

    @cached_property
    def settings(self) -> Settings:
        settings, self.origins = load(Path(self.config), self.backend, self.think, must_exist=self._named_config)
        return settings

    def roots(self) -> list[Path]:
        """Workspace roots for files and commands: tools.files.roots, else the start directory."""
        start = Path(self.cwd or os.getcwd())  # read here, not at creation: Studio builds contexts in its event loop
        roots = self.settings.tools.files.roots or [start]
        return [(start / Path(r).expanduser()).resolve() for r in roots]


# A graph run given no context (LangGraph Studio, a graph invoked from Python) gets this one
# Context, made on first use; LangGraph's server also builds a Context per run from its JSON, which
# borrows the served session's services (`serve`), as does the Context of Streamlit's app. One per
# process: those servers load the graphs, the context class and the app by import path, so nothing
# else can hand the session to them.
_default: Context | None = None
_serving = False
_default_lock = threading.Lock()


def of(runtime) -> Context:
    """The run's Context: `runtime.context`, or the process's default when the run has none."""
    return runtime.context if runtime.context is not None else default()


def writer(runtime) -> Callable[[dict], None]:
    """Where a node sends its events ({"notice": …}, {"status": …}, {"think"/"answer": …}): the
    session's own stream while the session runs the graph, else LangGraph's custom stream."""
    return of(runtime).events or runtime.stream_writer


def default() -> Context:
    """The Context of every graph run given none (made on first use; the served session's)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Context()
        return _default


def serve(ctx: Context) -> None:
    """Make `ctx` the default Context, whose services every Context built later for its data folder
    shares: the session LangGraph's server (studio.py) or Streamlit's app (cli/ui.py) serves."""
    global _default, _serving
    with _default_lock:
        _default, _serving = ctx, True
