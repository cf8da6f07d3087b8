"""The interactive front end: the REPL (prompt_toolkit line editing and history, rich
streaming output, slash commands), piped stdin one line at a time, and showing one turn.

Owns: how a turn looks on a terminal, Ctrl-C (stop the answer, keep what was said),
Ctrl-D (leave), and the slash commands. Does not own: running the turn (session.py)
or the status/history layouts (views.py).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text
from rich.tree import Tree

from graph import llm, thinking, views
from graph.embedded import EmbeddedModelMissing
from graph.nodes.act import unwrapped
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
  /quit            leave (Ctrl-D also leaves; the session is kept)
Ctrl-C stops the answer being written and keeps what was said.
When a tool needs your approval (a command, or an action after reading web pages or files),
the agent asks: y = run it once, n = don't, a = always allow that exact command."""


def banner(session: Session, console: Console) -> None:
    backend = session.backend
    if backend.notice and not backend.announced:
        console.print(Text("! " + backend.notice, style="yellow"))
        backend.announced = True
    for notice in session.recover():
        console.print(Text("! " + notice, style="yellow"))
    console.print(Text.assemble(("agent", "bold"), f" · {backend.name}: {backend.model} · data: {session.ctx.home}"
                                f" · turn {session.store.turns()} · /help for commands", style="dim"))


def show_turn(session: Session, text: str, console: Console) -> dict:
    """Run one turn and print it as it streams. Ctrl-C stops the answer, keeping the part already written."""
    def stop(signum, frame):
        if llm.STOP.is_set():  # second Ctrl-C: the backend is not answering at all
            raise KeyboardInterrupt
        llm.STOP.set()

    events = session.turn(text)
    previous = signal.signal(signal.SIGINT, stop) if _main_thread() else None
    meta: dict = {}
    wrote = False
    thoughts = Thoughts(console)

    def approve(request: dict) -> str:
        thoughts.close()
        return ask(request, console)

    session.approve = approve
    try:
        for kind, data in events:
            if kind == "thought":
                thoughts.add(data)
                continue
            thoughts.close()
            if kind == "token":
                console.print(views.printable(data), end="", markup=False, highlight=False, soft_wrap=True)
                wrote = True
            elif kind in ("notice", "status"):
                _newline(console, wrote)
                wrote = False
                console.print(Text("! " + data, style="yellow") if kind == "notice" else Text(data, style="dim"))
            elif kind == "tool_call":
                _newline(console, wrote)
                wrote = False
                args = json.dumps(data["args"], ensure_ascii=False)
                console.print(Text(f"→ {data['name']}({args})", style="magenta"))
            elif kind == "tool_result":
                console.print(Text(f"← {_clip(unwrapped(data))}", style="dim"))
            elif kind == "done":
                meta = data
    except KeyboardInterrupt:
        meta = {"interrupted": "stopped by the user"}
    except (llm.BackendError, EmbeddedModelMissing) as exc:  # the message is saved; the REPL goes on
        _newline(console, wrote)
        wrote = False
        Console(stderr=True).print(Text(f"error: {exc}", style="red"), soft_wrap=True)
        meta = {"error": str(exc)}
    finally:
        thoughts.close()
        events.close()  # an abandoned turn releases the session at once
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    _newline(console, wrote)
    if meta.get("interrupted"):
        console.print(Text(f"[{meta['interrupted']}]", style="yellow"))
    elif meta.get("backend"):
        speed = f" · {meta['tok_s']} tok/s" if meta.get("tok_s") else ""
        console.print(Text(f"{meta['backend']} · first token {meta['ttft_s']} s{speed}", style="dim"))
    return meta


def ask(request: dict, console: Console) -> str:
    """Ask the user whether a tool call may run: "yes", "no" or "always" (Ctrl-C or Ctrl-D: no)."""
    args = request["args"]
    shown = args.get("command") if isinstance(args.get("command"), str) else json.dumps(args, ensure_ascii=False)
    console.print(Text.assemble(("? ", "bold yellow"), (request["tool"], "bold"), " wants to run: ",
                                (views.printable(shown), "bold")))
    if request.get("reason"):
        console.print(Text(f"  ({request['reason']})", style="dim"))
    choices = "[y]es / [n]o" + (" / [a]lways" if request.get("always") else "")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if _main_thread() else None
    try:
        while True:
            try:
                reply = console.input(Text(f"  allow? {choices} ", style="bold yellow")).strip().lower()
            except (EOFError, KeyboardInterrupt):
                console.print()
                return "no"
            if reply in ("y", "yes", "はい"):
                return "yes"
            if reply in ("n", "no", "いいえ", ""):
                return "no"
            if reply in ("a", "always") and request.get("always"):
                return "always"
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


class Thoughts:
    """The model's thinking as it streams: live and dimmed on a terminal, then collapsed
    to one line ("thought for 3.2 s, 140 tokens") when the answer starts."""

    def __init__(self, console: Console):
        self.console, self.text, self.tokens, self.start, self.live = console, "", 0, None, None

    def add(self, piece: str) -> None:
        self.start = self.start or time.perf_counter()
        self.text += piece
        self.tokens += 1
        if self.console.is_terminal:
            if self.live is None:
                self.live = Live(console=self.console, transient=True, refresh_per_second=12)
                self.live.start()
            rows = max(3, self.console.size.height - 4)
            tail = "\n".join(self.text.splitlines()[-rows:])
            self.live.update(Text("thinking… " + tail, style="dim italic"))

    def close(self) -> None:
        if self.start is None:
            return
        if self.live is not None:
            self.live.stop()
            self.live = None
        seconds = time.perf_counter() - self.start
        self.console.print(Text(f"thought for {seconds:.1f} s, {self.tokens} tokens (/why shows it)", style="dim"))
        self.text, self.tokens, self.start = "", 0, None


class StatusBar:
    """The REPL's bottom toolbar: key numbers, refreshed in a background thread so that
    drawing it never waits (prompt_toolkit redraws it every monitoring.refresh_s)."""

    def __init__(self, session: Session):
        from graph import monitor

        self.line = ""
        self.session = session
        port = session.ctx.settings.monitoring.prometheus_port
        self.problem = monitor.serve_prometheus(port, self._snapshot) if port else ""
        threading.Thread(target=self._loop, daemon=True, name="status-bar").start()

    def _snapshot(self) -> dict:
        from graph import monitor

        return monitor.snapshot(self.session.ctx, self.session.store, self.session.backend)

    def _loop(self) -> None:
        from graph import monitor

        while True:
            try:
                self.line = monitor.status_line(self._snapshot())
            except Exception as exc:  # noqa: BLE001 - shown in the bar; the REPL goes on and it retries
                self.line = f"status bar failed: {type(exc).__name__}: {exc}"
            time.sleep(self.session.ctx.settings.monitoring.refresh_s)

    def text(self) -> str:
        return " " + self.line


def why(session: Session) -> Tree | Text:
    """The last reasoning, in full, as a tree of steps."""
    row = session.store.last_reasoning()
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


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _newline(console: Console, wrote: bool) -> None:
    if wrote:
        console.print()


def _clip(text: str, width: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width] + "…"


def command(session: Session, line: str, console: Console) -> bool:
    """Run a slash command; False means leave."""
    name, _, arg = line[1:].partition(" ")
    if name in ("quit", "exit", "q"):
        return False
    if name == "help":
        console.print(HELP, markup=False, highlight=False)
    elif name == "status":
        console.print(views.status_table(views.status(session.ctx, session.store, session.backend)))
    elif name == "history":
        n = arg.strip() or "5"
        if not (n.isascii() and n.isdigit() and 1 <= int(n) <= 10**9):
            console.print(Text("usage: /history [N], N from 1 to 1000000000", style="yellow"))
        else:
            console.print(views.history_view(session.store.history(int(n))))
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
    elif name == "search":
        if not arg.strip():
            console.print(Text("usage: /search TEXT", style="yellow"))
        else:
            console.print(views.history_view(session.store.search(arg.strip()), empty="no matching messages"))
    else:
        console.print(Text(f"unknown command /{name}; /help lists the commands", style="yellow"))
    return True


def memory_command(session: Session, name: str, arg: str, console: Console) -> None:
    """/memory [TEXT], /remember TEXT, /forget ID."""
    from graph.memory import MemoryUnavailable, memories_for

    ctx = session.ctx
    if not ctx.settings.memory.enabled:
        console.print(Text("long-term memory is turned off (memory.enabled in config.yaml)", style="yellow"))
        return
    if name != "memory" and not arg:
        console.print(Text(f"usage: /{name} {'TEXT' if name == 'remember' else 'ID'}", style="yellow"))
        return
    try:
        memories = memories_for(ctx)
        if name == "remember":
            found, what = memories.add(arg, "fact", 0.9, pinned=True, source="user")
            console.print(Text(f"{'already known, now pinned' if what == 'merged' else 'remembered'}: "
                               f"[{found.id}] {found.text}"))
        elif name == "forget":
            try:
                found = memories.forget(arg)
                console.print(Text(f"forgot [{found.id}] {found.text}"))
            except KeyError as exc:
                console.print(Text(str(exc.args[0] if exc.args else exc), style="yellow"))
        else:
            listed = memories.search(arg, k=10, touch=False) if arg else memories.list(limit=20)
            rows = [{**m.as_dict(), "strength": memories.effective_importance(m)} for m in listed]
            console.print(views.memory_table(rows, empty="no matching memories" if arg else "(no memories yet)"))
    except MemoryUnavailable as exc:
        console.print(Text(f"long-term memory is unavailable: {exc}", style="yellow"))


def _background(session: Session, job, lock: bool = True) -> None:
    """Run `job` in a thread while the user is not chatting; with `lock` it takes the turn
    lock (or skips when a turn is running), so it never writes beside a turn."""
    def run() -> None:
        from filelock import Timeout

        try:
            if lock:
                session.lock.acquire(timeout=0)
        except Timeout:
            return
        try:
            job()
        except Exception:  # noqa: BLE001 - best effort while idle; the next chance retries
            pass
        finally:
            if lock:
                session.lock.release()

    threading.Thread(target=run, daemon=True, name="memory-idle").start()


def run(session: Session, console: Console) -> None:
    """The REPL on a terminal; one message per line when stdin is piped."""
    from graph.nodes import reflect

    banner(session, console)
    if session.ctx.settings.memory.enabled and session.store.has_memories():  # load the embedder before it is needed
        from graph.memory import memories_for

        _background(session, lambda: memories_for(session.ctx).search("warm-up", k=1, touch=False), lock=False)
    for line in _lines(session, console):
        if line.startswith("/"):
            if not command(session, line, console):
                return
        else:
            show_turn(session, line, console)
            if reflect.consolidation_due(session.ctx):  # while the user reads the answer
                _background(session, lambda: reflect.consolidate(session.ctx))


def _lines(session: Session, console: Console):
    """Non-empty input lines: from piped stdin (echoed), or typed at a prompt_toolkit prompt."""
    if not sys.stdin.isatty():
        for raw in sys.stdin:
            if raw.strip():
                console.print(Text(f"> {raw.strip()}", style="bold cyan"))
                yield raw.strip()
        return
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    history = Path(session.ctx.home) / session.ctx.settings.repl.history_file
    bar = StatusBar(session)
    if bar.problem:
        console.print(Text("! " + bar.problem, style="yellow"))
    prompt = PromptSession(history=FileHistory(str(history)), bottom_toolbar=bar.text,
                           refresh_interval=session.ctx.settings.monitoring.refresh_s)
    while True:
        try:
            line = prompt.prompt("› ").strip()
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line
        except EOFError:
            console.print(Text("bye — the session is kept; `python agent.py` continues it.", style="dim"))
            return
        if line:
            yield line
