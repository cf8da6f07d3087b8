"""The interactive front end: the REPL (prompt_toolkit line editing and history, rich
streaming output), piped stdin one line at a time, showing one turn, asking the user to
approve a tool call, and the turn's upkeep and memory consolidation while the user reads
and types.

Owns: how a turn looks on a terminal, reading messages (one per line; several lines between
\"\"\" as in Ollama, or pasted at once; Tab completing slash commands), Ctrl-C (stop the answer,
keep what was said), Ctrl-D (leave). Does not own: the slash commands (slash.py), running the turn
(session.py) or the other commands' layouts (status.py, history.py, ...).
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

from graph.cli import slash
from graph.cli.output import printable
from graph.models import llm
from graph.models.embedded import EmbeddedModelMissing
from graph.models.llama_process import ModelCrashed
from graph.nodes.act import unwrapped
from graph.session import Session


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
        if session.ctx.stop.is_set():  # second Ctrl-C: the backend is not answering at all
            raise KeyboardInterrupt
        session.ctx.stop.set()

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
                console.print(printable(data), end="", markup=False, highlight=False, soft_wrap=True)
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
            elif kind == "done":  # the answer is in: the upkeep after it is the caller's (show_upkeep)
                meta = data
                break
    except KeyboardInterrupt:
        meta = {"interrupted": "stopped by the user"}
    except (llm.BackendError, EmbeddedModelMissing, ModelCrashed) as exc:  # the message is saved; the REPL goes on
        _newline(console, wrote)
        wrote = False
        Console(stderr=True).print(Text(f"error: {exc}", style="red"), soft_wrap=True)
        meta = {"error": str(exc)}
    finally:
        thoughts.close()
        events.close()  # an abandoned turn releases the session at once; a finished one leaves its upkeep
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    _newline(console, wrote)
    if meta.get("interrupted"):
        console.print(Text(f"[{meta['interrupted']}]", style="yellow"))
    elif meta.get("backend"):
        speed = f" · {meta['tok_s']} tok/s" if meta.get("tok_s") else ""
        console.print(Text(f"{meta['backend']} · first token {meta['ttft_s']} s{speed}", style="dim"))
    return meta


def show_upkeep(session: Session, console: Console) -> None:
    """Finish the latest turn's upkeep (memories, reward, rules, folding the window), printing
    its lines: at once after `-m` and piped input, in the background at the REPL's prompt."""
    for kind, text in session.upkeep():
        console.print(Text("! " + text, style="yellow") if kind == "notice" else Text(text, style="dim"))


def ask(request: dict, console: Console) -> str:
    """Ask the user whether a tool call may run: "yes", "no" or "always" (Ctrl-C or Ctrl-D: no)."""
    args = request["args"]
    shown = args.get("command") if isinstance(args.get("command"), str) else json.dumps(args, ensure_ascii=False)
    console.print(Text.assemble(("? ", "bold yellow"), (request["tool"], "bold"), " wants to run: ",
                                (printable(shown), "bold")))
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


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _newline(console: Console, wrote: bool) -> None:
    if wrote:
        console.print()


def _clip(text: str, width: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width] + "…"


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
    banner(session, console)
    session.backend.warm()  # the model loads while the user types
    if session.ctx.settings.memory.enabled and session.store.has_memories():  # load the embedder before it is needed
        from graph.memory.memories import memories_of

        _background(session, lambda: memories_of(session.ctx).search("warm-up", k=1, touch=False), lock=False)
    upkeep = Upkeep(session, console)
    try:
        for line in _lines(session, console):
            upkeep.wait()  # the last turn's upkeep, before anything else touches the session
            if line.startswith("/"):
                if not slash.command(session, line, console):
                    return
            else:
                show_turn(session, line, console)
                upkeep.start(background=sys.stdin.isatty())  # while the user reads the answer and types
    finally:
        upkeep.wait()


class Upkeep:
    """The latest turn's upkeep (show_upkeep) in a thread while the user reads and types; its
    lines appear above the prompt (patch_stdout in _lines). Then, while the user is idle,
    memory consolidation when due."""

    def __init__(self, session: Session, console: Console):
        self.session, self.console = session, console
        self.thread: threading.Thread | None = None

    def start(self, background: bool) -> None:
        if not background:
            return self._run()
        self.thread = threading.Thread(target=self._run, daemon=True, name="turn-upkeep")
        self.thread.start()

    def _run(self) -> None:
        from graph.actions import memory
        from graph.nodes import reflect

        show_upkeep(self.session, self.console)
        if reflect.consolidation_due(self.session.ctx):
            _background(self.session, lambda: memory.consolidate(self.session.ctx))

    def wait(self) -> None:
        if self.thread is None:
            return
        if self.thread.is_alive():
            self.console.print(Text("(finishing the last turn's upkeep…)", style="dim"))
            self.thread.join()
        self.thread = None


QUOTES = '"""'


def multiline(first: str, more) -> str:
    """A message: `first` as it is, or, when it starts with \"\"\", everything up to the line that
    ends with \"\"\" (as Ollama reads it), with further lines from `more()` (EOFError ends it too)."""
    if not first.startswith(QUOTES):
        return first
    lines, line = [], first[len(QUOTES):]
    while not line.rstrip().endswith(QUOTES):
        lines.append(line)
        try:
            line = more()
        except EOFError:
            return "\n".join(lines).strip()
    lines.append(line.rstrip()[: -len(QUOTES)])
    return "\n".join(lines).strip()


def _lines(session: Session, console: Console):
    """Non-empty messages: from piped stdin (echoed; one per line, or several lines between
    \"\"\"), or typed at a prompt_toolkit prompt (where a paste of several lines is one message)."""
    if not sys.stdin.isatty():
        def more() -> str:
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line.rstrip("\n")

        for raw in sys.stdin:
            text = multiline(raw.strip(), more)
            if text:
                console.print(Text(f"> {text}", style="bold cyan"))
                yield text
        return
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import WordCompleter
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.patch_stdout import patch_stdout

    history = Path(session.ctx.home) / session.ctx.settings.repl.history_file
    bar = StatusBar(session)
    if bar.problem:
        console.print(Text("! " + bar.problem, style="yellow"))
    # a paste arrives as one bracketed paste (prompt_toolkit's default): its lines stay in one message
    prompt = PromptSession(history=FileHistory(str(history)), bottom_toolbar=bar.text,
                           refresh_interval=session.ctx.settings.monitoring.refresh_s,
                           completer=WordCompleter(slash.NAMES, sentence=True), complete_while_typing=False)
    while True:
        try:
            with patch_stdout(raw=True):  # the upkeep's lines print above the prompt
                line = multiline(prompt.prompt("› ").strip(), lambda: prompt.prompt("… "))
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line (or the message of several lines)
        except EOFError:
            console.print(Text("bye — the session is kept; `python agent.py` continues it.", style="dim"))
            return
        if line:
            yield line
