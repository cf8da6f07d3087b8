"""The REPL's slash commands: /help, /status, /history, /search, /think, /why, /tools, /undo,
/memory, /remember, /forget, /good, /bad, /rate, /reward, /prompt, /learn, /data, /evolve, /quit (/bye).

Owns: parsing a slash line, showing each command's result, and the names to complete (NAMES).
Does not own: the REPL loop and how a turn is shown (repl.py), or the layouts, which each
command's module shares with its `agent.py` command (status.py, history.py, memory.py,
reward.py, prompt.py, data.py, learning.py, evolve.py).
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from graph.actions import history as conversation
from graph.actions import status as snapshot
from graph.cli import history, status
from graph.models import thinking
from graph.session import Session

HELP = """Commands:
  /help            this help
  /status          backend, model, data folder, turns and live metrics
  /history [N]     the last N turns of the conversation (default 5)
  /search TEXT     find earlier messages containing TEXT
  /think [on|off|auto]  think before answering: always, never, or when the message needs it
  /why             the last reasoning in full, step by step
  /memory [TEXT]   long-term memories (relevant to TEXT, if given)
  /remember TEXT   keep TEXT in long-term memory, pinned (it never fades)
  /forget ID       forget a memory (ids as /memory shows them)
  /tools           the tools the agent can use (built-in, MCP servers, self-made)
  /undo [force]    restore the file the agent edited last (force: even if changed since)
  /good, /bad      rate the last answer (the agent learns from it)
  /rate N          rate the last answer from 1 (bad) to 5 (good)
  /reward [N]      the last N rewards (default 5) and the reward curve (`agent.py reward --turn N` explains one)
  /prompt [history|diff|rollback]  the system prompt in use, its versions, its last change, or undo that change
  /learn [on|off]  self-learning: its state, standing preferences and recent changes, or freeze (off) / resume (on) it
  /learn undo      end the newest standing preference (made from feedback such as "too long")
  /data            the latest tuning examples and their counts
  /evolve [runs|lineage]  start an evolution run in the background (or: the runs so far, the last run's lineage)
  /quit, /bye      leave (Ctrl-D also leaves; the session is kept)
Tab completes a command. \"\"\" starts a message of several lines, \"\"\" ends it (a paste of
several lines is one message anyway).
Ctrl-C stops the answer being written and keeps what was said.
When a tool needs your approval (a command, or an action after reading web pages or files),
the agent asks: y = run it once, n = don't, a = always allow that exact command."""


NAMES = sorted(set(re.findall(r"(?<![\w/])/[a-z]+", HELP)))  # every command HELP names, for Tab


def why(session: Session) -> Tree | Text:
    """The last reasoning, in full, as a tree of steps."""
    row = conversation.why(session.store)
    if row is None:
        return Text("no reasoning yet: the agent thinks first when /think is on, or in auto mode for "
                    "multi-step questions", style="dim")
    quality = row["meta"].get("reasoning", {})
    title = f"reasoning of turn #{row['turn']}"
    if quality:
        title += f" · quality {quality.get('score')} ({quality.get('steps')} steps"
        title += f", cut: {quality['cut']})" if quality.get("cut") else ")"
    tree = Tree(Text(title, style="bold"))
    for i, step in enumerate(thinking.steps(row["reasoning"]), 1):
        tree.add(Text(f"{i}. ", style="dim") + Text(step))
    tree.add(Text("answer: ", style="bold green") + Text(row["content"]))
    return tree


def command(session: Session, line: str, console: Console) -> bool:
    """Run a slash command; False means leave."""
    name, _, arg = line[1:].partition(" ")
    if name in ("quit", "bye", "exit", "q"):
        return False
    if name == "help":
        console.print(HELP, markup=False, highlight=False)
    elif name == "status":
        console.print(status.status_table(snapshot.status(session.ctx, session.store, session.backend)))
    elif name == "history":
        n = arg.strip() or "5"
        if not (n.isascii() and n.isdigit() and 1 <= int(n) <= 10**9):
            console.print(Text("usage: /history [N], N from 1 to 1000000000", style="yellow"))
        else:
            console.print(history.history_view(conversation.history(session.store, int(n))))
    elif name == "why":
        console.print(why(session))
    elif name == "think":
        mode = arg.strip()
        if mode in ("on", "off", "auto"):
            session.ctx.think = mode
            session.ctx.__dict__.pop("settings", None)  # re-read with the new mode
        elif mode:
            console.print(Text("usage: /think on|off|auto", style="yellow"))
            return True
        console.print(Text(f"thinking: {session.ctx.settings.reasoning.mode}", style="dim"))
    elif name in ("memory", "remember", "forget"):
        memory_command(session, name, arg.strip(), console)
    elif name in LEARNING:
        learning_command(session, name, arg.strip(), console)
    elif name == "tools":
        from graph import tools

        for row in tools.listing(session.ctx, lambda text: console.print(Text("! " + text, style="yellow"))):
            console.print(Text.assemble((row["name"], "bold"), (f"  {row['source']}  ", "dim"), row["description"]))
    elif name == "undo":
        from graph.tools import files

        try:
            console.print(Text(files.undo(session.ctx, force=arg.strip() == "force")))
        except files.UndoError as exc:
            console.print(Text(f"{exc}", style="yellow"))
    elif name == "evolve":
        evolve_command(session, arg.strip(), console)
    elif name == "search":
        if not arg.strip():
            console.print(Text("usage: /search TEXT", style="yellow"))
        else:
            console.print(history.history_view(conversation.search(session.store, arg.strip()), empty="no matching messages"))
    else:
        console.print(Text(f"unknown command /{name}; /help lists the commands", style="yellow"))
    return True


LEARNING = {"good": "/good", "bad": "/bad", "rate": "/rate N (1 to 5)", "reward": "/reward [N]",
            "prompt": "/prompt [history|diff|rollback]", "learn": "/learn [on|off] or /learn undo", "data": "/data"}


def learning_command(session: Session, name: str, arg: str, console: Console) -> None:
    """/good, /bad, /rate N, /reward [N], /prompt [history|diff|rollback], /learn [on|off|undo], /data."""
    from graph.actions import examples, rewards
    from graph.actions import learning as learning_actions
    from graph.actions import prompt as versions
    from graph.cli import data, learning, prompt, reward
    from graph.cli.output import Problem

    ctx, store = session.ctx, session.store
    fine = {"good": not arg, "bad": not arg, "rate": arg in ("1", "2", "3", "4", "5"),
            "reward": not arg or (arg.isascii() and arg.isdigit() and 1 <= int(arg) <= 1000),
            "prompt": arg in ("", "history", "diff", "rollback"), "learn": arg in ("", "on", "off", "undo"),
            "data": not arg}
    if not fine[name]:
        console.print(Text(f"usage: {LEARNING[name]}", style="yellow"))
        return
    try:
        if name in ("good", "bad", "rate"):
            rated = rewards.rate(ctx, "rating" if name == "rate" else name, int(arg) if arg else None)
            console.print(reward.rated_text(ctx, rated))
        elif name == "reward":
            console.print(reward.rewards_view(rewards.report(store, int(arg or 5)), short=True))
        elif name == "prompt" and arg == "rollback":
            console.print(Text(prompt.rolled_back(*versions.rollback(ctx, "rolled back by the user (/prompt rollback)"))))
        elif name == "prompt" and arg == "diff":
            console.print(prompt.diff_view(versions.diff_pair(ctx)))
        elif name == "prompt":
            serving = versions.current(ctx)
            console.print(prompt.history_table(store, versions.history(store), serving.id) if arg == "history"
                          else prompt.version_view(store, serving, serving.id))
        elif name == "learn":
            console.print(Text(learning_actions.undo_preference(ctx)) if arg == "undo" else
                          Text(learning_actions.switch(ctx, arg == "off")) if arg else learning.learn_view(ctx, store, 5))
        else:
            console.print(data.examples_view(store, examples.listing(store, last=10)))
    except Problem as exc:
        console.print(Text(str(exc), style="yellow"))


def evolve_command(session: Session, arg: str, console: Console) -> None:
    """/evolve: a background run (the chat goes on); /evolve runs, /evolve lineage: what was bred."""
    from graph.actions import Problem
    from graph.actions import evolution as act
    from graph.cli import evolve
    from graph.learning import guard

    store = session.store
    if arg == "runs":
        rows = act.runs(store, 10)
        console.print(evolve.runs_table(rows) if rows else Text("no evolution runs yet", style="dim"))
    elif arg == "lineage":
        try:
            which, nodes = act.lineage(store)
        except Problem:
            which, nodes = None, []
        console.print(evolve.lineage_tree(which, nodes) if nodes else Text("no evolution runs yet", style="dim"))
    elif arg:
        console.print(Text("usage: /evolve [runs|lineage]", style="yellow"))
    elif guard.frozen(store):
        console.print(Text("no new run: learning is frozen (/learn on resumes it)", style="yellow"))
    else:
        try:
            pid = act.start(session.ctx, "cli")
        except Problem as exc:
            console.print(Text(f"no new run: {exc}", style="yellow"))
            return
        console.print(Text(f"evolution started in the background (process {pid}); /status shows its progress,"
                           " /evolve lineage what it bred"))


def memory_command(session: Session, name: str, arg: str, console: Console) -> None:
    """/memory [TEXT], /remember TEXT, /forget ID."""
    from graph.actions import memory
    from graph.cli.memory import memory_table
    from graph.cli.output import Problem

    ctx = session.ctx
    try:
        memory.memories(ctx)  # turned off or unavailable: said before anything else
        if name != "memory" and not arg:
            console.print(Text(f"usage: /{name} {'TEXT' if name == 'remember' else 'ID'}", style="yellow"))
        elif name == "remember":
            found, what = memory.add(ctx, arg, "fact", 0.9, pinned=True)
            console.print(Text(f"{'already known, now pinned' if what == 'merged' else 'remembered'}: "
                               f"[{found['id']}] {found['text']}"))
        elif name == "forget":
            found = memory.forget(ctx, arg)
            console.print(Text(f"forgot [{found['id']}] {found['text']}"))
        else:
            rows = memory.search(ctx, arg, turns=0)["memories"] if arg else memory.listing(ctx, last=20)
            console.print(memory_table(rows, empty="no matching memories" if arg else "(no memories yet)"))
    except Problem as exc:
        console.print(Text(str(exc), style="yellow"))
