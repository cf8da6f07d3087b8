"""`run_command`: run one shell command in a workspace folder, with a timeout and an output cap.

Owns running it: bash (or /bin/sh) on POSIX, cmd on Windows; no input; stdout and stderr merged
in order; on timeout or Ctrl-C the whole process group is killed; the output keeps its head and tail.
A non-zero exit code is a result, not a failure. Output is marked untrusted.
Does not own: whether a command may run at all (ask, allowlist, deny: approval.py decides before
this is called).
"""

from __future__ import annotations

import codecs
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from langchain_core.tools import ToolException, tool
from langgraph.prebuilt import ToolRuntime

from graph.context import Context, of

MAX_TIMEOUT_S = 3600.0
BACKGROUND_GRACE_S = 0.5  # once the shell exits, how long its background processes may hold the output


@tool
def run_command(command: str, runtime: ToolRuntime[Context], cwd: str = "", timeout_s: float = 0) -> str:
    """Run a shell command (bash on Linux/macOS, cmd on Windows) and return its exit code and output
    (stdout and stderr together; long output keeps its start and end). There is no input: never
    run interactive programs. cwd: folder to run in (default: the workspace); timeout_s: 0 = default."""
    ctx = of(runtime)
    shell = ctx.settings.tools.shell
    folder = _folder(ctx, cwd)
    timeout = min(timeout_s, MAX_TIMEOUT_S) if timeout_s > 0 else shell.timeout_s
    posix = os.name != "nt"
    argv = [shutil.which("bash") or "/bin/sh", "-c", command] if posix else command
    proc = subprocess.Popen(argv, shell=not posix, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=posix)
    out = _Output(shell.max_output_chars)
    reader = threading.Thread(target=out.read, args=(proc.stdout,), daemon=True, name="run_command")
    reader.start()
    deadline, stopped = time.monotonic() + timeout, False
    try:
        while (code := proc.poll()) is None and time.monotonic() < deadline:
            if ctx.stop.is_set():  # Ctrl-C in the REPL: stop the command, keep its output
                stopped = True
                break
            time.sleep(0.05)
        leftover = code is None
        if not leftover:
            reader.join(BACKGROUND_GRACE_S)
            leftover = reader.is_alive()  # background processes still hold the output open
    except BaseException:  # a second Ctrl-C: the command runs in its own session, so it would outlive the call
        _kill(proc)
        raise
    if leftover:
        _kill(proc)
        reader.join(BACKGROUND_GRACE_S)  # bounded: a process that left the group may still hold it
    output = out.text() or "(no output)"
    if stopped:
        raise ToolException(f"`{command}` was stopped by the user (Ctrl-C). Output so far:\n{output}")
    if code is None:
        raise ToolException(f"`{command}` timed out after {timeout:g} s; the command was killed. "
                            f"Output so far:\n{output}")
    note = "\n[background processes still writing to the output were stopped]" if leftover else ""
    status = f"exit code {code}" if code >= 0 else f"killed by signal {-code}"
    return f"{status}\n{output}{note}"


run_command.metadata = {"acts": "shell", "untrusted": True}
TOOLS = [run_command]


def _folder(ctx: Context, cwd: str) -> Path:
    """`cwd` (relative to the first workspace root), which must lie inside one of the roots."""
    roots = ctx.roots()
    folder = (roots[0] / Path(cwd).expanduser()).resolve() if cwd else roots[0]
    if not any(folder.is_relative_to(root) for root in roots):
        raise ToolException(f"cwd {folder} is outside the workspace; use one of "
                            f"{', '.join(str(r) for r in roots)} or a folder inside.")
    if not folder.is_dir():
        raise ToolException(f"cwd {folder} is not an existing folder.")
    return folder


def _kill(proc: subprocess.Popen) -> None:
    """Kill the command and everything it started."""
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # all gone already
    proc.wait()


class _Output:
    """A command's output as it comes: its first and last characters within `cap`, and how many were cut."""

    def __init__(self, cap: int) -> None:
        self.head_cap, self.tail_cap = cap // 2, cap - cap // 2
        self.head, self.tail, self.total = "", "", 0

    def read(self, stream) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while chunk := stream.read1(65536):
            self._add(decoder.decode(chunk))
        self._add(decoder.decode(b"", final=True))
        stream.close()

    def _add(self, text: str) -> None:
        self.total += len(text)
        room = self.head_cap - len(self.head)
        self.head += text[:room]
        if rest := text[room:]:
            self.tail = (self.tail + rest)[-self.tail_cap:]

    def text(self) -> str:
        cut = self.total - len(self.head) - len(self.tail)
        return self.head + (f"\n[… {cut} characters cut …]\n" if cut else "") + self.tail
