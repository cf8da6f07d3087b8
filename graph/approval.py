"""The approval policy: may this tool call run now, must the user be asked, or is it refused?

Owns: the shell policy from config (ask / allowlist / auto, deny patterns), the commands
that never run (deny patterns and anything touching the agent's own data folder), the
user's standing "always" approvals, and the rule against prompt injection: once content
from outside (web pages, MCP servers) is in the model's window, nothing that acts
(commands, file writes, self-modification) runs without the user saying yes.
Where nobody can be asked (-m, piped input, cron, sub-agents), "ask" becomes "refuse".
Does not own: asking (the act node interrupts the graph; the front end asks) or running tools.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from langchain_core.messages import BaseMessage
from langchain_core.tools import BaseTool

from graph.context import Context


@dataclass
class Verdict:
    action: str  # "run" | "ask" | "refuse"
    reason: str = ""  # why it asks or refuses, in words for the user and the model
    pattern: str = ""  # what an "always" answer approves from now on ('' = cannot be approved for always)


def tainted(messages: list[BaseMessage]) -> str:
    """The source of content from outside the user's machine (web pages, MCP servers) in the
    model's window, or ''. Workspace files and command output are marked untrusted too, but
    they are the user's own and do not make every later action ask (reading and then editing
    files is the everyday loop); the shell policy still governs commands."""
    for m in reversed(messages):
        source = m.additional_kwargs.get("untrusted", "") if m.type == "tool" else ""
        if source == "web" or source.startswith("mcp:"):
            return source
    return ""


def check(ctx: Context, tool: BaseTool, args: dict, taint: str = "") -> Verdict:
    """The verdict for calling `tool` with `args`; `taint` is `tainted(window)`."""
    acts = (tool.metadata or {}).get("acts")
    if acts == "shell":
        verdict = _shell(ctx, str(args.get("command", "")), str(args.get("cwd") or ""), taint)
    elif acts in ("write", "self") and taint:
        verdict = Verdict("ask", f"{_outside(taint)}, so {tool.name} needs your approval")
    else:
        verdict = Verdict("run")
    if verdict.action == "ask" and not ctx.interactive:
        return Verdict("refuse", f"{verdict.reason}, and nobody can be asked in this run (-m, piped input, "
                                 "cron or a sub-agent); ask the user to run it from the interactive REPL")
    return verdict


def _shell(ctx: Context, command: str, cwd: str, taint: str) -> Verdict:
    shell = ctx.settings.tools.shell
    if not command.strip():
        return Verdict("refuse", "the command is empty")
    for pattern in shell.deny:
        if re.search(pattern, command):
            return Verdict("refuse", f"the command matches the deny pattern {pattern!r} (tools.shell.deny)")
    if touches(ctx, command) or (cwd and touches(ctx, shlex.quote(cwd))):
        return Verdict("refuse", f"the command touches the agent's own data folder {ctx.home}")
    if taint:  # even allow-listed or always-approved commands: the model may be obeying a page
        return Verdict("ask", f"{_outside(taint)}, so every command needs your approval", command)
    if shell.policy == "auto" or ctx.store.approved("run_command", command):
        return Verdict("run")
    if shell.policy == "allowlist" and any(fnmatch.fnmatchcase(command.strip(), p) for p in shell.allow):
        return Verdict("run")
    why = "the shell policy is ask" if shell.policy == "ask" else "the command is not in tools.shell.allow"
    return Verdict("ask", why, command)


def touches(ctx: Context, command: str) -> bool:
    """Does `command` name the data folder (by absolute path, or by a path relative to a root)?"""
    home = Path(ctx.home).resolve()
    if str(home) in command:
        return True
    try:
        words = shlex.split(command, comments=True)
    except ValueError:  # unbalanced quotes: judge the raw words
        words = command.split()
    for word in words:
        for part in re.split(r"[=:,;|&<>()`$]", word):
            if not part or part.startswith("-"):
                continue
            for root in ctx.roots():
                try:
                    target = (root / Path(part).expanduser()).resolve()
                except (OSError, ValueError):
                    continue
                if target == home or home in target.parents:
                    return True
    return False


def _outside(taint: str) -> str:
    return f"this conversation now holds content from outside ({taint}) that may carry instructions"
