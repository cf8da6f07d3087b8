"""The runtime context: what LangGraph hands to every node as `runtime.context`.

Owns: the `Context` dataclass (the data folder, the config file, the flags that override
settings, the sub-agent limits, and the settings read from the config on first use),
locating the data folder (`--home` > `AGENT_HOME` > `data/` beside agent.py) and the one
thread id of the endless session.
Does not own: the config schema and loading it (config.py), reading the environment
(environment.py) or reading/writing data (store.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from graph.config import DEFAULT_CONFIG, ROOT, Settings, load

THREAD_ID = "main"  # the one endless session


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

    def __post_init__(self) -> None:
        self._named_config = bool(self.config)
        self.home = str(Path(self.home).expanduser().resolve() if self.home else default_home())
        self.config = str(Path(self.config).expanduser().resolve() if self.config else DEFAULT_CONFIG)

    @cached_property
    def settings(self) -> Settings:
        settings, self.origins = load(Path(self.config), self.backend, self.think, must_exist=self._named_config)
        return settings

    def roots(self) -> list[Path]:
        """Workspace roots for files and commands: tools.files.roots, else the start directory."""
        start = Path(self.cwd or os.getcwd())  # read here, not at creation: Studio builds contexts in its event loop
        roots = self.settings.tools.files.roots or [start]
        return [(start / Path(r).expanduser()).resolve() for r in roots]
