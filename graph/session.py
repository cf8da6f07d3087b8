"""The one endless session: the compiled graph over SQLite, turns taken one at a time
across processes, recovery from a crash, and a turn as a stream of events.

Owns: opening the data folder's checkpointer (`SqliteSaver`, fixed thread id), compiling
the graph, the per-turn lock (several terminals share one session and take turns),
recovering after a crash or kill (an unanswered turn is marked interrupted, a half-done
step is closed, upkeep cut short is finished, folded turns not indexed yet are handed
to the memory's backlog), pruning old checkpoints, asking the
front end (`approve`) when a tool call waits for the user's approval, running the graph in
the session's own thread (the nodes' events come through `Context.events`), and running
one turn as events the front ends render: ("notice", text), ("status", text),
("thought", text), ("token", text), ("tool_call", call), ("tool_result", message),
("done", metrics), then the upkeep's ("status"/"notice", text).

A turn has two parts. The answer: the graph runs until it is about to leave `reason` for
the upkeep nodes (AFTER_ANSWER), the answer is checkpointed, the lock is released and
"done" is yielded: the user has what they waited for. The upkeep: the iterator goes on
with reflect → reward → self_rewrite → compact (memories, rewards, rules, folding the
window, with the model calls some of them make) under the lock again, then hands the
turns folded out of the window to the memory's backlog, whose thread indexes them once the
user pauses (backlog.py), outside the lock. A front end may
finish the iterator at once (`agent.py -m`, tests, benchmarks) or in the background while
the user reads and types (the REPL). If the process dies or the lock is taken by another
process first, whoever next takes the lock finishes it (`_recover`): exactly once, since
the checkpoint says what is left.
Does not own: how those events are shown (repl.py) or what the nodes do.
"""

from __future__ import annotations

import contextvars
import queue
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import psutil
from filelock import FileLock, Timeout
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.types import Command

from graph import turnlog
from graph.builder import build_graph
from graph.context import THREAD_ID, Context
from graph.memory import backlog
from graph.models import llm
from graph.store import StoreError, connect, explain

AFTER_ANSWER = ("reflect", "reward", "self_rewrite", "compact")
CRASHED = "the agent stopped before answering (it was closed, killed or crashed)"
# Each step's checkpoint is written in LangGraph's background thread while the next step runs (what
# a kill leaves is at most one step behind), and all are written before a run's events end. Since the
# graph runs in the session's own thread (`_stream`), this waits 0.7-1 ms less per turn than writing
# each before the next step ("sync"), measured turn by turn in one process on 2 cores.
DURABILITY = "async"


class Session:
    def __init__(self, ctx: Context):
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.ctx = ctx
        ctx.settings  # validate config.yaml before anything else
        self.store = ctx.store
        self.saver = SqliteSaver(connect(self.store.path, autocommit=False))
        try:
            self.saver.setup()
        except sqlite3.DatabaseError as exc:
            raise StoreError(explain(self.store.path, exc)) from None
        self.graph = build_graph(self.saver)
        self.config = {"configurable": {"thread_id": THREAD_ID}}
        self.lock = FileLock(Path(ctx.home) / "turn.lock")
        # Asks the user about a tool call that needs approval: gets {tool, args, reason, always}
        # and returns "yes", "no" or "always". None (or ctx.interactive False): never asked.
        self.approve: Callable[[dict], str] | None = None
        # The latest checkpoint when this process last saw the session with nothing left to do:
        # while it is still the latest, recovery need not load the state to find out
        self._settled: str | None = None
        # runs the graph (`_stream`): one thread for the session's lifetime, started on first use
        self._runner = ThreadPoolExecutor(1, thread_name_prefix="session")

    @property
    def backend(self) -> llm.Backend:
        return llm.active(self.ctx)

    def recover(self) -> list[str]:
        """If no other process is mid-turn, repair what a crash left behind; returns notices."""
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            return []
        try:
            return self._recover()
        finally:
            self.lock.release()

    def _recover(self, current: str | None = None) -> list[str]:
        notices = []
        for turn in self.store.open_turns():
            if turn["msg_id"] != current and not _alive(turn["pid"], turn["started"]):
                self.store.close_turn(turn["turn"], CRASHED)
                notices.append(f"turn #{turn['turn']} was interrupted: {CRASHED}. Your message is kept in the history.")
        if queue := self._backlog():  # folded turns not indexed yet (an exit or a kill mid-way)
            queue.wake()
        if self._settled and self._settled == self._latest():
            return notices
        state = self.graph.get_state(self.config)
        if state.next and state.next[0] in AFTER_ANSWER:  # the answer is in; its upkeep is not done yet
            notices.extend(text for _, text in self._finish())
        elif state.next:  # a step was cut short: close the turn in the state as well
            messages = state.values.get("messages", [])
            last = messages[-1] if messages else None
            patch = [ToolMessage(f"interrupted: {CRASHED}", tool_call_id=c["id"], name=c["name"])
                     for c in getattr(last, "tool_calls", [])]
            patch.append(AIMessage("", id=str(uuid.uuid4()), response_metadata={"interrupted": CRASHED}))
            self.graph.update_state(self.config, {"messages": patch}, as_node="compact")
        self._settled = self._latest()
        return notices

    def turn(self, text: str) -> Iterator[tuple[str, object]]:
        """Start one user turn: the message is saved at once, then the returned iterator waits
        for the session (another terminal may be mid-turn), runs the graph and yields events.
        The session's stop signal (Ctrl-C) keeps the partial answer; close the iterator to abandon the turn."""
        self.ctx.stop.clear()
        message = HumanMessage(text, id=str(uuid.uuid4()))
        self.store.append(message)  # saved before anything else can fail
        return self._events(message)

    def _events(self, message: HumanMessage) -> Iterator[tuple[str, object]]:
        turn = self.store.turn_of(message.id)
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            yield "notice", "waiting for the other session to finish its turn…"
            try:
                self.lock.acquire()
            except BaseException:  # Ctrl-C while waiting: the turn is given up, its message kept
                self.store.close_turn(turn, "stopped by the user while waiting for the other session")
                raise
        try:
            for notice in self._recover(current=message.id):
                yield "notice", notice
            yield from self._run(message)
            meta = self.store.last_answer_meta()  # read under the lock: this turn's answer, not another's
        except BaseException as exc:
            why = "stopped by the user" if isinstance(exc, (KeyboardInterrupt, GeneratorExit)) else str(exc)
            self.store.close_turn(turn, why)  # a no-op when the answer had already closed it
            turnlog.log_turn(self.ctx, turn, {}, error=why)
            raise
        finally:
            self.lock.release()
        turnlog.log_turn(self.ctx, turn, meta)
        yield "done", meta
        yield from self.upkeep()

    def upkeep(self) -> Iterator[tuple[str, str]]:
        """Finish the upkeep after the latest answer, yielding its ("status"/"notice", text).
        When another process holds the session, it is left to that one (its recovery does it)."""
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            return
        try:
            state = self.graph.get_state(self.config)
            if state.next and state.next[0] in AFTER_ANSWER:
                yield from self._finish()
            self._prune()
            # a half-done step (a crash's) is left to the next turn's recovery
            self._settled = None if state.next and state.next[0] not in AFTER_ANSWER else self._latest()
        finally:
            self.lock.release()
        yield from self._index_folded()
        from graph.evolution.runs import auto_start

        if started := auto_start(self.ctx, self.store):
            yield "notice", started

    def _index_folded(self) -> Iterator[tuple[str, str]]:
        """Have the turns that compaction folded out of the window indexed in long-term memory
        by the backlog's thread, once the user pauses (another terminal's turn may start meanwhile)."""
        if (queue := self._backlog()) and (problem := queue.schedule()):
            yield "notice", f"memory is unavailable, old turns are not indexed yet: {problem}"

    def _backlog(self):
        """The memory's backlog when folded turns wait to be indexed, else None (and the memory
        with its embedder is not loaded)."""
        if not (self.ctx.settings.memory.enabled and backlog.waiting(self.store)):
            return None
        from graph.memory.memories import memories_of

        return memories_of(self.ctx).backlog

    def _finish(self) -> Iterator[tuple[str, str]]:
        """Run the upkeep nodes left after an answer (under the lock)."""
        try:
            for mode, data in self._stream(None):
                for kind in ("notice", "status"):
                    if mode == "custom" and kind in data:
                        yield kind, data[kind]
        except llm.backend_errors():  # the model is gone: fold later, the session goes on
            self.graph.update_state(self.config, None, as_node="compact")

    def _run(self, message: HumanMessage) -> Iterator[tuple[str, object]]:
        """Stream the graph up to the answer; when a tool call waits for the user's approval,
        ask and resume."""
        command: dict | Command = {"messages": [message]}
        while command is not None:
            questions = []
            for mode, data in self._stream(command, interrupt_before=AFTER_ANSWER[:1]):
                if mode == "custom":
                    for key, kind in (("notice", "notice"), ("status", "status"), ("think", "thought"),
                                      ("answer", "token")):
                        if key in data:
                            yield kind, data[key]
                    continue
                for node, update in (data or {}).items():
                    if node == "__interrupt__":
                        questions.extend(update)
                        continue
                    for msg in (update or {}).get("messages", []) if isinstance(update, dict) else []:
                        if node == "reason":
                            for call in msg.tool_calls:
                                yield "tool_call", call
                        elif node == "act":
                            yield "tool_result", msg
            answers = {}
            for question in questions:
                answers[question.id] = self.approve(question.value) if self.approve and self.ctx.interactive else "no"
            command = Command(resume=answers) if answers else None

    def _stream(self, command: dict | Command | None, **options) -> Iterator[tuple[str, object]]:
        """Run the graph in the session's thread, yielding ("custom", data) as the nodes write it
        (`context.writer`) and ("updates", data) as each step ends. LangGraph's own "custom" stream
        would start a thread pool per call and run each node in it beside a waiter: about 1.5 ms
        more per turn on 2 cores. Leaving early (the iterator closed, Ctrl-C) stops the answer
        being written and waits until the graph is done with the session."""
        events: queue.SimpleQueue = queue.SimpleQueue()

        def run() -> None:
            self.ctx.events = lambda data: events.put(("custom", data))
            try:
                for update in self.graph.stream(command, self.config, context=self.ctx, stream_mode="updates",
                                                durability=DURABILITY, **options):
                    events.put(("updates", update))
            except BaseException as exc:  # raised again where the events are read
                events.put(("error", exc))
            else:
                events.put(("end", None))
            finally:
                self.ctx.events = None

        running = self._runner.submit(contextvars.copy_context().run, run)
        event: tuple = ("", None)
        try:
            while (event := events.get())[0] in ("custom", "updates"):
                yield event
        finally:
            if event[0] not in ("end", "error"):  # left early
                stopped = self.ctx.stop.is_set()
                self.ctx.stop.set()
                wait([running])
                if not stopped:
                    self.ctx.stop.clear()
        if event[0] == "error":
            raise event[1]

    def _latest(self) -> str | None:
        """The id of the session's latest checkpoint (one indexed row, not the state)."""
        with self.saver.lock:
            row = self.saver.conn.execute(
                "SELECT checkpoint_id FROM checkpoints WHERE thread_id=? AND checkpoint_ns=''"
                " ORDER BY checkpoint_id DESC LIMIT 1", (THREAD_ID,)).fetchone()
        return row[0] if row else None

    def _prune(self) -> None:
        """Keep only the latest `session.keep_checkpoints` checkpoints of the thread."""
        keep = self.ctx.settings.session.keep_checkpoints
        latest = ("SELECT checkpoint_id FROM checkpoints WHERE thread_id=? AND checkpoint_ns=''"
                  " ORDER BY checkpoint_id DESC LIMIT ?")
        with self.saver.lock, self.saver.conn as db:
            for table in ("writes", "checkpoints"):
                db.execute(f"DELETE FROM {table} WHERE thread_id=? AND checkpoint_id NOT IN ({latest})",
                           (THREAD_ID, THREAD_ID, keep))

    def messages(self) -> list:
        state = self.graph.get_state(self.config)
        return state.values.get("messages", []) if state else []

    def summary(self) -> str:
        state = self.graph.get_state(self.config)
        return state.values.get("summary", "") if state else ""


def _alive(pid: int | None, since: float) -> bool:
    """Is the process that began a turn at `since` still running (and not a reused pid)?"""
    try:
        process = psutil.Process(pid) if pid else None
        return bool(process) and process.create_time() <= since + 1 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
