"""The web UI's turn in progress: one turn of the session run in a background thread, its events
kept for the page to draw as they come, and the approval it may wait for.

Streamlit reruns the page script on every click, which would cut a turn run inside the script
short; so the turn runs here, in its own thread, and the page polls `blocks()`. A tool call
that needs approval blocks the thread in `Session.approve` until a button calls `answer()`.
Owns: starting a turn (one at a time per UI process; the session's file lock orders it with
the REPL, `-m` and the API), its events with their times, the pending approval, stopping it.
Does not own: how the blocks look (chat.py) or the turn itself (session.py).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field

from graph.models import llm
from graph.models.embedded import EmbeddedModelMissing
from graph.models.llama_process import ModelCrashed
from graph.session import Session

CHOICES = ("yes", "no", "always")


@dataclass
class Block:
    """A run of events drawn as one piece: "thought" and "token" pieces are joined; "tool_call",
    "tool_result", "notice", "status" and "error" are one event each."""

    kind: str
    text: str = ""
    data: object = None
    start: float = 0.0
    end: float = 0.0
    pieces: int = 0


@dataclass
class LiveTurn:
    session: Session
    text: str
    events: list[tuple[str, object, float]] = field(default_factory=list)
    question: dict | None = None  # the tool call waiting for the user's approval
    answered: bool = False  # "done" came: the answer is in the transcript
    finished: bool = False  # the upkeep after it is done too (or the turn failed)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._answers: queue.Queue[str] = queue.Queue(maxsize=1)
        self._asking = threading.Lock()  # the question and its one answer change together
        self._events = self.session.turn(self.text)  # the message is saved before this returns
        mine = [t["turn"] for t in self.session.store.open_turns() if t["pid"] == os.getpid()]
        self.number = max(mine) if mine else 0  # the turn the message opened
        self.thread = threading.Thread(target=self._run, daemon=True, name="web-turn")
        self.thread.start()

    def _run(self) -> None:
        self.session.approve = self._approve
        try:
            for kind, data in self._events:
                if kind == "done":
                    self.meta, self.answered = dict(data or {}), True
                self.events.append((kind, data, time.monotonic()))
        except (llm.BackendError, EmbeddedModelMissing, ModelCrashed) as exc:  # the message is kept
            self.events.append(("error", str(exc), time.monotonic()))
        finally:
            self.question, self.answered, self.finished = None, True, True

    def _approve(self, request: dict) -> str:
        """Session.approve, in the turn's thread: wait for the user's button (no answer within
        web.approval_timeout_s, as in the API, say a closed tab: no, so the session is not held by
        a turn nobody sees)."""
        wait_s = self.session.ctx.settings.web.approval_timeout_s
        with self._asking:
            self.question = request
        try:
            return self._answers.get(timeout=wait_s)
        except queue.Empty:
            with self._asking:
                if self.question is None:  # answered at the last moment
                    return self._answers.get_nowait()
                self.question = None
            why = f"no answer within {wait_s:g} s: the command was not run"
            self.events.append(("notice", why, time.monotonic()))
            return "no"

    def answer(self, choice: str) -> bool:
        """The user's answer to the pending approval; False when none is pending (a second click)."""
        with self._asking:
            request = self.question
            if request is None or choice not in CHOICES or (choice == "always" and not request.get("always")):
                return False
            self.question = None
            self._answers.put_nowait(choice)
            return True

    def stop(self) -> None:
        """Stop the answer (the part written is kept), declining a pending approval."""
        self.session.ctx.stop.set()
        self.answer("no")

    def blocks(self) -> list[Block]:
        """The events so far, joined into blocks in order."""
        out: list[Block] = []
        for kind, data, at in list(self.events):
            if kind == "done":
                continue
            last = out[-1] if out else None
            if kind in ("thought", "token") and last and last.kind == kind:
                last.text += str(data)
                last.end, last.pieces = at, last.pieces + 1
                continue
            text = data if isinstance(data, str) else ""
            out.append(Block(kind, text, data, at, at, 1))
        return out


class Desk:
    """The UI process's one session and its turn in progress, shared by every browser tab."""

    def __init__(self, session: Session):
        self.session = session
        self.turn: LiveTurn | None = None
        self.notices: list[str] = []  # what recovering the session said (a turn cut short before)
        self._lock = threading.Lock()

    def send(self, text: str) -> LiveTurn:
        """Start a turn with `text`, after the previous turn's upkeep (as the REPL waits for it)."""
        with self._lock:
            if self.turn is not None:
                self.turn.thread.join()
            self.turn = LiveTurn(self.session, text)
            return self.turn

    def live(self) -> LiveTurn | None:
        """The turn still running (answer or upkeep), else None."""
        turn = self.turn
        return turn if turn is not None and not turn.finished else None
