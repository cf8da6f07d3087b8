"""Turns sent through the API: run one at a time, in order, on a worker thread, as JSON events
that any number of listeners (a server-sent-events stream, WebSockets) follow live, and
approvals asked of whoever answers first (REST or WebSocket).

Owns: the queue of the API's turns (one worker thread: this process's turns run in the order
they were sent; the session's file lock makes them take turns with the REPL, `agent.py -m`
and Studio), each turn's event log (replayed to a listener that joins late; the latest
KEEP turns' logs are kept), turning the session's events into JSON-ready dicts, the approval
requests of a waiting tool call (each with an id, answered once; unanswered after
web.approval_timeout_s, or at shutdown: "no"), and stopping at shutdown (the answer so far
is kept, as Ctrl-C does in the REPL).
Does not own: running the turn (session.py), HTTP or WebSocket (api.py), auth (auth.py).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import uuid
from collections.abc import Callable

from langchain_core.messages import ToolMessage

from graph.models import llm
from graph.models.embedded import EmbeddedModelMissing
from graph.nodes.act import unwrapped
from graph.session import Session
from graph.web.plain import plain

ANSWERS = ("yes", "no", "always")
KEEP = 200  # turns whose events are kept for GET /turns/{id} (older ones: 404)
log = logging.getLogger("uvicorn.error")  # shown by uvicorn


class Unknown(LookupError):
    """No such turn or approval request (404)."""


class Conflict(Exception):
    """The approval request was already answered (409)."""


class Approval:
    def __init__(self, request: dict):
        self.id = uuid.uuid4().hex[:12]
        self.request = request
        self.answer: str | None = None
        self.answered = threading.Event()


class Turn:
    """One turn sent through the API: its events so far and its listeners."""

    def __init__(self, text: str):
        self.id = uuid.uuid4().hex
        self.text = text
        self.events: list[dict] = []
        self.finished = False
        self.approvals: dict[str, Approval] = {}
        self._listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []
        self._lock = threading.Lock()

    def publish(self, kind: str, data: object) -> None:
        with self._lock:
            if self.finished:  # ended early: the server is stopping
                return
            event = {"turn": self.id, "seq": len(self.events), "kind": kind, "data": data}
            self.events.append(event)
            self.finished = kind == "end"
            listeners = list(self._listeners)
        for loop, q in listeners:
            loop.call_soon_threadsafe(q.put_nowait, event)

    def listen(self) -> asyncio.Queue:
        """A queue (for the running event loop) that gets every event of the turn, from its first."""
        q: asyncio.Queue = asyncio.Queue()
        with self._lock:
            for event in self.events:
                q.put_nowait(event)
            if not self.finished:
                self._listeners.append((asyncio.get_running_loop(), q))
        return q

    def unlisten(self, q: asyncio.Queue) -> None:
        with self._lock:
            self._listeners = [(loop, each) for loop, each in self._listeners if each is not q]

    def summary(self) -> dict:
        return {"turn": self.id, "text": self.text, "finished": self.finished, "events": len(self.events),
                "waiting": [{"id": a.id, **a.request} for a in self.approvals.values() if a.answer is None]}


class Turns:
    """The API's turns on one session, run by one worker thread."""

    def __init__(self, session: Session, timeout_s: Callable[[], float]):
        self.session = session
        self.timeout_s = timeout_s
        self.turns: dict[str, Turn] = {}
        self._queue: queue.Queue = queue.Queue()
        self._current: Turn | None = None
        self._stopping = threading.Event()
        session.approve = self._ask
        self._worker = threading.Thread(target=self._work, daemon=True, name="api-turns")
        self._worker.start()

    def send(self, text: str) -> Turn:
        """Save the message (at once: kept whatever happens next) and queue its turn."""
        turn = Turn(text)
        events = self.session.turn(text)
        self.turns[turn.id] = turn
        for old in list(self.turns)[:-KEEP]:  # the oldest finished turns' events (the history keeps them)
            if getattr(self.turns.get(old), "finished", False):  # (another request may drop it first)
                self.turns.pop(old, None)
        ahead = self._queue.qsize() + (self._current is not None)
        turn.publish("accepted", {"ahead": ahead})
        self._queue.put((turn, events))
        return turn

    def get(self, turn_id: str) -> Turn:
        if turn_id not in self.turns:
            raise Unknown(f"no such turn: {turn_id}")
        return self.turns[turn_id]

    def answer(self, turn_id: str, approval_id: str, answer: str) -> None:
        """Answer a waiting approval request; a second answer is a Conflict."""
        turn = self.get(turn_id)
        if approval_id not in turn.approvals:
            raise Unknown(f"turn {turn_id} has no approval request {approval_id}")
        approval = turn.approvals[approval_id]
        if answer not in ANSWERS or (answer == "always" and not approval.request.get("always")):
            allowed = ", ".join(a for a in ANSWERS if a != "always" or approval.request.get("always"))
            raise ValueError(f"answer must be one of: {allowed} (got {answer!r})")
        with turn._lock:
            if approval.answer is not None:
                raise Conflict(f"approval request {approval_id} was already answered: {approval.answer}")
            approval.answer = answer
        approval.answered.set()

    def stop(self) -> None:
        """When the server stops: stop the running answer (kept as far as it got), decline the
        waiting approvals, end every stream, and give up the queued turns (their messages are
        kept; the next start marks them interrupted). Returns at once."""
        self._stopping.set()
        self.session.ctx.stop.set()
        for turn in list(self.turns.values()):
            for approval in list(turn.approvals.values()):
                with turn._lock:
                    approval.answer = approval.answer or "no"
                approval.answered.set()
            turn.publish("end", {"stopped": "the server is stopping"})
        self._queue.put(None)

    def join(self, wait_s: float = 60) -> None:
        """Wait for the running turn to stop: the model stops at its next token; the upkeep after
        the answer is left to the next start."""
        self._worker.join(timeout=wait_s)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            turn, events = item
            if self._stopping.is_set():
                events.close()
                turn.publish("end", {})
                continue
            self._current = turn
            try:
                self._run(turn, events)
            finally:
                self._current = None

    def _run(self, turn: Turn, events) -> None:
        self.session.ctx.stop.clear()
        try:
            for kind, data in events:
                turn.publish(kind, jsonable(kind, data))
                if kind == "done" and self._stopping.is_set():
                    break  # the upkeep is left to the next start (the session's recovery)
        except (*llm.backend_errors(), EmbeddedModelMissing) as exc:  # the message is kept; the server goes on
            turn.publish("error", {"error": str(exc) or type(exc).__name__})
        except Exception as exc:  # a bug: its traceback in the server's log, the other turns go on
            log.exception("turn %s failed", turn.id)
            turn.publish("error", {"error": f"the turn failed: {type(exc).__name__}: {exc}"})
        finally:
            events.close()
            turn.publish("end", {})

    def _ask(self, request: dict) -> str:
        """Session.approve, on the worker thread: publish the request and wait for its answer."""
        if self._stopping.is_set():
            return "no"
        turn = self._current
        approval = Approval(request)
        turn.approvals[approval.id] = approval
        turn.publish("approval", {"id": approval.id, **request})
        if not approval.answered.wait(self.timeout_s()):
            with turn._lock:
                approval.answer = approval.answer or "no"
        turn.publish("approved", {"id": approval.id, "answer": approval.answer})
        return approval.answer


def jsonable(kind: str, data: object) -> object:
    """A session event's data as JSON-ready values."""
    if kind == "tool_call":
        return {"id": data.get("id"), "name": data["name"], "args": data.get("args", {})}
    if kind == "tool_result" and isinstance(data, ToolMessage):
        return {"tool_call_id": data.tool_call_id, "name": data.name, "status": data.status,
                "content": unwrapped(data)}
    return plain(data)
