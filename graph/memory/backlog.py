"""The turns waiting to be indexed in long-term memory, indexed off the turn's path.

Owns: the `turn_backlog` table of agent.db (turns that left the conversation window and are
not searchable yet; durable, so a kill loses none and the next start indexes them), indexing
them in batches (one embedding call and one index write per batch) by the background thread
of each `Memories`, once the conversation pauses (the user reads and types) or at once when
many wait (`schedule`, called by the turn's upkeep: session.py), so the user never waits for
it; and the claim that keeps two processes from indexing the same turn: DATA/backlog.lock,
held while a batch is embedded and written (the system releases it when its process dies).
When the program ends, the thread finishes the batch it is indexing, if any, and the rest
waits for the next start.
Does not own: embedding and writing the index (memories.py's `index_turns`, vectors.py), or which
turns leave the window (nodes/compact.py).
"""

from __future__ import annotations

import threading
import time

BATCH = 32  # turns embedded in one call
QUIET = 1.0  # seconds without newly queued turns before indexing starts...
MOST = 8  # ...unless this many are waiting (then they are indexed while turns go on)
LOOK = 0.2  # seconds between looks at whether the program is ending


def waiting(store) -> bool:
    """Do folded turns wait to be indexed? Read from agent.db alone, so a session can ask
    without loading the memory and its embedder."""
    return bool(store.read("SELECT EXISTS(SELECT 1 FROM turn_backlog)")[0][0])


class Backlog:
    """The waiting turns of one data folder and the thread that indexes them. Thread-safe."""

    def __init__(self, memories):
        from filelock import FileLock

        self.memories, self.store = memories, memories.store
        self._claim = FileLock(str(memories.index.home / "backlog.lock"))
        self._wake = threading.Condition()
        self._waiting = False  # turns may be waiting
        self._last = 0.0  # time.monotonic() when turns were last queued
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.problem: str | None = None  # why the last batch could not be indexed (memory unavailable)
        self._said: str | None = None  # the problem `schedule` last returned

    def add(self, turns: list[int]) -> None:
        """Queue these turns for indexing (written to agent.db at once); `schedule` has them indexed."""
        now = time.time()
        with self.store.write() as db:
            db.executemany("INSERT OR IGNORE INTO turn_backlog VALUES (?, ?)", [(t, now) for t in turns])

    def schedule(self) -> str | None:
        """Have the thread index the waiting turns, in batches, once the conversation pauses (at
        once when `MOST` wait). Returns why memory is unavailable, once for each new reason."""
        self.wake(pause=True)
        if self.problem is None or self.problem == self._said:
            return None
        self._said = self.problem
        return self.problem

    def wake(self, pause: bool = False) -> None:
        """Have the thread index what is waiting: after a pause in the conversation (`pause`: turns
        were just queued), or, when the thread starts (what a previous process left), now."""
        with self._wake:
            started = self._thread is not None and self._thread.is_alive()
            self._waiting = True
            if pause or not started:
                self._last = time.monotonic() if pause else 0.0
            if not started:
                self._stopping = False
                # not a daemon: the program's end waits for the batch being written (_run ends then)
                self._thread = threading.Thread(target=self._run, name="memory-backlog")
                self._thread.start()
            self._wake.notify()

    def pending(self) -> int:
        """Turns waiting to be indexed (by any process)."""
        return self.store.read("SELECT COUNT(*) FROM turn_backlog")[0][0]

    def drain(self) -> None:
        """Index every waiting turn now, in this thread (after another process's batch if one is
        being indexed). Raises MemoryUnavailable."""
        while self._batch(block=True):
            pass

    def stop(self) -> None:
        """End the thread now, or once the batch it is indexing is written; the rest stays queued."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _batch(self, block: bool) -> int:
        """Index the oldest waiting turns under the claim; 0 when none wait or (not `block`) another
        process holds the claim."""
        from filelock import Timeout

        try:
            self._claim.acquire(timeout=-1 if block else 0)
        except Timeout:
            return 0
        try:
            turns = [t for (t,) in self.store.read("SELECT turn FROM turn_backlog ORDER BY turn LIMIT ?", (BATCH,))]
            if turns:
                self.memories.index_turns(turns)
            return len(turns)
        finally:
            self._claim.release()

    def _ready(self) -> bool:
        return self._waiting and (time.monotonic() - self._last >= QUIET or self.pending() >= MOST)

    def _run(self) -> None:
        from graph.memory.vectors import MemoryUnavailable

        while True:
            with self._wake:
                while not self._stopping and threading.main_thread().is_alive() and not self._ready():
                    self._wake.wait(max(0.01, min(LOOK, QUIET - (time.monotonic() - self._last))) if self._waiting
                                    else LOOK)
                if self._stopping or not threading.main_thread().is_alive():  # the program is ending
                    return
            try:
                indexed = self._batch(block=False)
                self.problem = self._said = None
            except MemoryUnavailable as exc:  # said after the next turn that folds (schedule); retried then
                self.problem, indexed = str(exc), 0
                with self._wake:
                    self._waiting = False
                continue
            if not indexed:  # none left, or another process is indexing: look again after a pause
                with self._wake:
                    self._waiting, self._last = self.pending() > 0, time.monotonic()
