"""Folded turns are indexed in long-term memory off the turn's path (graph/backlog.py), with the
real Chroma index and the bundled embedder: neither the answer nor the turn's upkeep waits for
its folded turns to be embedded, which the backlog's thread does once the user pauses, outside
the turn lock,
a process killed mid-batch loses nothing (the next start indexes what was left), and two
processes draining one backlog never index the same turn twice."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage

from conftest import ROOT
from fakes import ScriptedChat, install
from graph.memory import backlog, memories as memory
from graph.context import Context
from graph.memory.memories import memories_of
from graph.session import Session
from graph.store import Store

TOPICS = ["baking sourdough bread", "repairing a bicycle chain", "planting tomatoes", "learning the violin",
          "booking a train to Kyoto", "cleaning a cast-iron pan"]

CHILD = '''
import json, pathlib, sys, time
sys.path.insert(0, {root!r})
from graph.memory import backlog, memories as memory
from graph.context import Context
from graph.memory.memories import memories_of

mode, home, config, out = sys.argv[1:5]
backlog.BATCH = 3
real = memory.Memories.index_turns

def index_turns(self, turns):
    if mode == "hang":  # the test kills this process here, mid-batch
        pathlib.Path(out).touch()
        time.sleep(120)
    with open(out, "a", encoding="utf-8") as log:
        log.write(json.dumps(turns) + "\\n")
    real(self, turns)

memory.Memories.index_turns = index_turns
mem = memories_of(Context(home=home, config=config))
mem.search("load the embedder first", touch=False)
pathlib.Path(out + ".ready").touch()
while not pathlib.Path(home, "go").exists():  # both processes start draining together
    time.sleep(0.01)
mem.backlog.drain()
'''


def folded(home: str, turns: int) -> None:
    """Turns in the transcript, each a question and an answer about one topic, folded out of the
    window and queued for indexing by an earlier process (as compact.py leaves them)."""
    store = Store(home)
    for i in range(1, turns + 1):
        topic = TOPICS[(i - 1) % len(TOPICS)]
        store.append(HumanMessage(f"Tell me about {topic}, part {i}.", id=f"u{i}"))
        store.append(AIMessage(f"Here is how {topic} works, step {i}.", id=f"a{i}"))
    with store.write() as db:
        db.executemany("INSERT INTO turn_backlog VALUES (?, ?)", [(i, time.time()) for i in range(1, turns + 1)])


def child(tmp_path: Path, mode: str, home: str, config: str, out: Path) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)), encoding="utf-8")
    return subprocess.Popen([sys.executable, str(script), mode, home, config, str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_folded_turns_are_indexed_by_the_backlogs_thread_once_the_user_pauses(tmp_path, make_config, monkeypatch):
    ctx = Context(home=str(tmp_path / "home"), config=str(make_config({"session": {"keep_turns": 1}})))
    model = ScriptedChat(replies=[])
    install(ctx, model, context_window=1024)
    session = Session(ctx)
    entered, release, threads = threading.Event(), threading.Event(), []
    real = memory.Memories.index_turns

    def held(self, turns):
        threads.append(threading.current_thread().name)
        entered.set()
        release.wait(60)
        real(self, turns)

    monkeypatch.setattr(memory.Memories, "index_turns", held)
    for i, topic in enumerate(TOPICS, 1):
        model.replies = [f"Here is a long answer about {topic}. " * 20, "The user asked about several hobbies."]
        list(session.turn(f"Tell me about {topic}, part {i}. " * 5))  # the answer and its upkeep, as -m runs them
        if backlog.waiting(session.store):
            break
    queued = [t for (t,) in session.store.read("SELECT turn FROM turn_backlog ORDER BY turn")]
    assert queued and queued[0] == 1 and session.store.get_meta("turns_indexed") is None
    assert entered.wait(30)  # the user pauses: the backlog's thread indexes them...
    assert threads == ["memory-backlog"]
    model.replies = ["Green tea is steeped at about 80 degrees.", "The user asked about hobbies and tea."]
    kinds = [kind for kind, _ in session.turn("How hot should green tea be? " * 5)]
    assert "done" in kinds  # ...outside the turn lock: a turn meanwhile is not held up by it
    release.set()
    mem, deadline = memories_of(ctx), time.monotonic() + 60
    while mem.backlog.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mem.backlog.pending() == 0 and int(mem.store.get_meta("turns_indexed")) >= queued[-1]
    assert set(threads) == {"memory-backlog"}
    assert mem.search_turns(TOPICS[0], k=1)[0]["turn"] == 1
    mem.add(f"The user likes {TOPICS[0]}", "preference")
    kept, past = mem.recall(TOPICS[0], k=2, turns=2, touch=False)  # a turn's recall: both lookups at once
    assert [m.id for m in kept] == [m.id for m in mem.search(TOPICS[0], k=2, touch=False)] and kept
    assert past == mem.search_turns(TOPICS[0], k=2) and past[0]["turn"] == 1


def test_a_kill_mid_batch_loses_nothing(tmp_path, make_config):
    home, config = str(tmp_path / "home"), str(make_config({}))
    folded(home, 5)
    (Path(home) / "go").touch()
    marker = tmp_path / "in_batch"
    proc = child(tmp_path, "hang", home, config, marker)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "no batch"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    ctx = Context(home=home, config=config)
    mem = memories_of(ctx)
    assert mem.backlog.pending() == 5  # nothing was lost, nothing half-marked
    Session(ctx).recover()  # the next start hands them to the backlog's thread
    deadline = time.monotonic() + 120
    while mem.backlog.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert mem.backlog.pending() == 0 and mem.store.get_meta("turns_indexed") == "5"
    assert mem.search_turns(f"{TOPICS[1]}, part 2", k=1)[0]["turn"] == 2


def test_two_processes_never_index_the_same_turn(tmp_path, make_config):
    home, config = str(tmp_path / "home"), str(make_config({}))
    folded(home, 24)
    logs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    procs = [child(tmp_path, "drain", home, config, log) for log in logs]
    deadline = time.monotonic() + 120
    while not all(Path(f"{log}.ready").exists() for log in logs) and time.monotonic() < deadline:
        time.sleep(0.05)
    (Path(home) / "go").touch()  # both start draining together; the claim decides who indexes what
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    done = [[t for line in log.read_text().splitlines() for t in json.loads(line)] if log.exists() else []
            for log in logs]
    assert sorted(done[0] + done[1]) == list(range(1, 25))  # every turn once: none twice, none missed
    mem = memories_of(Context(home=home, config=config))
    with mem.index.reading():
        assert mem.backlog.pending() == 0 and mem.index.turns.count() == 24
