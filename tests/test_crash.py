"""Crash safety and many terminals, end to end: real processes, the real embedded model, real SQLite.

`kill -9` at three points of a turn (while the model streams, during a tool call, during
summarisation) loses no user message, and the next launch resumes cleanly; several
terminals (a REPL and `-m`, processes waiting for each other, 10 clients at once) share
the one session without forking it or losing a turn; a read-only data folder fails clearly.

To stop a process at an exact point, it runs through a small harness (written to the test's
tmp folder) that imports the real agent, wraps one function so that it touches a marker file
and sleeps, then calls `agent.main()`.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pexpect
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk

from conftest import ROOT, agent_env
from fakes import ScriptedChat, install
from graph.context import Context
from graph.session import CRASHED, Session

AGENT = str(ROOT / "agent.py")
PROMPT = "›"
WAITING = "waiting for the other session"

HARNESS = '''
import json, pathlib, sys, time
sys.path.insert(0, {root!r})
mode, marker, seconds = sys.argv[1], pathlib.Path(sys.argv[2]), float(sys.argv[3])

def held(original):
    def hold(*args, **kwargs):
        marker.touch()  # the test now knows the process is exactly here
        time.sleep(seconds)
        return original(*args, **kwargs)
    return hold

if mode == "tool":
    from graph.tools import clock
    clock.current_time.func = held(clock.current_time.func)
elif mode == "summarize":
    from graph.models import llm
    llm.summarize = held(llm.summarize)
elif mode == "record":  # log every model call (answer or summary), one JSON line each
    from graph.models import llm

    def recording(name, original, position):
        def record(*args, **kwargs):
            with marker.open("a", encoding="utf-8") as log:
                messages = [[m.type, m.text] for m in args[position]]
                log.write(json.dumps({{"call": name, "messages": messages}}, ensure_ascii=False) + "\\n")
            return original(*args, **kwargs)
        return record

    llm.respond = recording("respond", llm.respond, 1)
    llm.summarize = recording("summarize", llm.summarize, 2)

import agent
sys.exit(agent.main(sys.argv[4:]))
'''

TIME_QUESTION = "What time is it now?"
STORY = "Write a very long story about a dragon who learns to cook, with many chapters."


# ---------------------------------------------------------------- helpers


@pytest.fixture
def harness(tmp_path):
    path = tmp_path / "harness.py"
    path.write_text(HARNESS.format(root=str(ROOT)), encoding="utf-8")
    return path


@pytest.fixture
def procs():
    """Processes started by a test; any still running at the end are killed (by their own pid)."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGCONT)
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def agent(*args, home, timeout=120):
    return subprocess.run([sys.executable, AGENT, *args, "--home", str(home)], capture_output=True, text=True,
                          env=agent_env(home), timeout=timeout, encoding="utf-8")


def launch(procs, argv, home) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, *map(str, argv), "--home", str(home)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=agent_env(home))
    os.set_blocking(proc.stdout.fileno(), False)
    procs.append(proc)
    return proc


def read_until(proc: subprocess.Popen, done, timeout: float = 60, seen: bytearray | None = None) -> str:
    """Read the process's stdout without blocking until `done(text)` holds; returns the text so far."""
    buf = seen if seen is not None else bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done(buf.decode("utf-8", "replace")):
            return buf.decode("utf-8", "replace")
        try:
            chunk = os.read(proc.stdout.fileno(), 65536)
        except BlockingIOError:
            chunk = None
        if chunk:
            buf += chunk
        elif chunk == b"":  # end of file: the process is gone
            if done(buf.decode("utf-8", "replace")):
                return buf.decode("utf-8", "replace")
            break
        else:
            time.sleep(0.02)
    stderr = proc.stderr.read().decode() if proc.poll() is not None else "(still running)"
    raise AssertionError(f"stdout never matched; got {bytes(buf)!r}; rc={proc.poll()}; stderr={stderr}")


def wait_for_marker(proc: subprocess.Popen, marker: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, f"exited (rc {proc.returncode}) before the point: {proc.stderr.read().decode()}"
        assert time.monotonic() < deadline, "the process never reached the point"
        time.sleep(0.02)


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL and reap at once (as a shell would: an unreaped zombie still looks alive)."""
    assert proc.poll() is None, "the process finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def history(home) -> list[dict]:
    out = agent("history", "--json", home=home)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def turns(home) -> list[tuple]:
    db = sqlite3.connect(Path(home) / "agent.db")
    try:
        return db.execute("SELECT turn, status, why, started, ended FROM turns ORDER BY turn").fetchall()
    finally:
        db.close()


def graph_state(home, cfg):
    session = Session(Context(home=str(home), config=str(cfg)))
    return session.graph.get_state(session.config)


def model_calls(log: Path) -> list[tuple[str, list[tuple[str, str]]]]:
    """What a `record` harness logged: (respond | summarize, [(type, text), ...]) per model call."""
    lines = log.read_text(encoding="utf-8").splitlines()
    return [(c["call"], [tuple(m) for m in c["messages"]]) for c in map(json.loads, lines)]


def assert_no_dangling_tool_calls(messages) -> None:
    answered = {m.tool_call_id for m in messages if m.type == "tool"}
    for m in messages:
        for call in getattr(m, "tool_calls", []):
            assert call["id"] in answered, f"tool call {call} has no ToolMessage in {messages}"


def config(make_config, name="config.yaml", max_tokens=48, tools=False, **extra):
    settings = {"llm": {"backend": "embedded", "max_tokens": max_tokens, **extra.pop("llm", {})},
                "agent": {} if tools else {"max_tool_rounds": 0}, **extra}
    return make_config(settings, name)


# ---------------------------------------------------------------- kill -9 at three points of a turn


def test_kill_while_the_model_streams(tmp_path, make_config, procs):
    home = tmp_path / "home"
    long_cfg = config(make_config, "long.yaml", max_tokens=2000, llm={"temperature": 0.9})
    proc = launch(procs, [AGENT, "-m", STORY, "--config", long_cfg], home)
    read_until(proc, lambda text: len(text.split()) >= 4)  # the answer is streaming (it is saved only at its end)
    kill9(proc)

    assert [(r["turn"], r["role"], r["content"]) for r in history(home)] == [(1, "user", STORY)]
    assert turns(home)[0][:2] == (1, "open")  # nobody has looked yet

    cfg = config(make_config)
    out = agent("-m", "Hello again!", "--config", cfg, home=home)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert f"turn #1 was interrupted: {CRASHED}" in out.stdout
    rows = history(home)
    assert [(r["turn"], r["role"]) for r in rows] == [(1, "user"), (2, "user"), (2, "assistant")]
    assert rows[0]["content"] == STORY and rows[2]["content"].strip()
    assert rows[2]["content"].strip()[:20] in out.stdout  # the new turn was answered and shown
    assert [t[:3] for t in turns(home)] == [(1, "interrupted", CRASHED), (2, "done", None)]

    state = graph_state(home, cfg)
    assert state.next == ()
    messages = state.values["messages"]
    assert [m.type for m in messages] == ["human", "ai", "human", "ai"]
    assert messages[0].text == STORY and messages[1].response_metadata["interrupted"] == CRASHED
    assert messages[2].text == "Hello again!" and messages[3].text.strip()


def test_kill_during_a_tool_call(tmp_path, make_config, harness, procs):
    home, marker = tmp_path / "home", tmp_path / "in_tool"
    tools_cfg = config(make_config, "tools.yaml", tools=True)
    proc = launch(procs, [harness, "tool", marker, 60, "-m", TIME_QUESTION, "--config", tools_cfg], home)
    wait_for_marker(proc, marker)
    kill9(proc)

    rows = history(home)
    assert [(r["turn"], r["role"]) for r in rows] == [(1, "user"), (1, "assistant")]
    assert rows[0]["content"] == TIME_QUESTION and rows[1]["tool_calls"][0]["name"] == "current_time"
    assert graph_state(home, tools_cfg).next == ("act",)  # killed inside the tool, as intended

    cfg = config(make_config)
    out = agent("-m", "Hello again!", "--config", cfg, home=home)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert f"turn #1 was interrupted: {CRASHED}" in out.stdout
    assert [t[:3] for t in turns(home)] == [(1, "interrupted", CRASHED), (2, "done", None)]
    rows = history(home)
    assert [(r["turn"], r["role"]) for r in rows][-2:] == [(2, "user"), (2, "assistant")]
    assert rows[-1]["content"].strip()

    state = graph_state(home, cfg)
    assert state.next == ()
    messages = state.values["messages"]
    assert_no_dangling_tool_calls(messages)
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai", "human", "ai"]
    assert messages[2].tool_call_id == messages[1].tool_calls[0]["id"] and CRASHED in messages[2].text
    assert messages[4].text == "Hello again!" and messages[5].text.strip()


def test_kill_during_summarisation(tmp_path, make_config, harness, procs):
    home, marker = tmp_path / "home", tmp_path / "in_summary"
    # A tiny window so the second turn folds the first one away (compaction runs after the answer).
    cfg = config(make_config, max_tokens=64, llm={"temperature": 0, "embedded": {"n_ctx": 512}},
                 session={"compact_at": 0.2, "keep_turns": 1, "summary_tokens": 50})
    first = "Please tell me, in one short sentence, what the capital city of France is and why it is famous."
    second = "Please tell me, in one short sentence, what the capital city of Italy is and why it is famous."
    out = agent("-m", first, "--config", cfg, home=home)
    assert out.returncode == 0, out.stderr
    proc = launch(procs, [harness, "summarize", marker, 60, "-m", second, "--config", cfg], home)
    wait_for_marker(proc, marker)
    kill9(proc)

    rows = history(home)  # the answer came before the folding: it is kept, the turn is done
    assert [(r["turn"], r["role"]) for r in rows] == [(1, "user"), (1, "assistant"), (2, "user"), (2, "assistant")]
    assert rows[2]["content"] == second and rows[3]["content"].strip()
    assert [t[:2] for t in turns(home)] == [(1, "done"), (2, "done")]
    state = graph_state(home, cfg)
    assert state.next == ("compact",) and not state.values.get("summary")  # killed mid-folding

    log = tmp_path / "calls.jsonl"
    out = subprocess.run([sys.executable, str(harness), "record", str(log), "0", "-m", "Thank you!", "--config",
                          str(cfg), "--home", str(home)], capture_output=True, text=True, env=agent_env(home),
                         timeout=120, encoding="utf-8")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "was interrupted" not in out.stdout  # that turn was answered
    calls = model_calls(log)
    # Before answering, the next launch finished the cut-short folding: exactly the first turn.
    assert calls[0] == ("summarize", [("human", first), ("ai", rows[1]["content"])])
    assert [name for name, _ in calls].index("respond") > 0
    assert [t[:3] for t in turns(home)] == [(1, "done", None), (2, "done", None), (3, "done", None)]
    rows = history(home)
    assert [r["content"] for r in rows if r["role"] == "user"] == [first, second, "Thank you!"]
    assert rows[-1]["role"] == "assistant" and rows[-1]["content"].strip()

    state = graph_state(home, cfg)
    assert state.next == ()
    assert state.values["summary"].strip()  # the folding was completed
    humans = [m.text for m in state.values["messages"] if m.type == "human"]
    assert first not in humans and humans[-1] == "Thank you!"  # the first turn now lives in the summary
    assert state.values["messages"][-1].type == "ai"


# ---------------------------------------------------------------- many terminals


def spawn_repl(harness, log, home, cfg):
    env = dict(agent_env(home), PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    child = pexpect.spawn(sys.executable, [str(harness), "record", str(log), "0", "--config", str(cfg),
                                           "--home", str(home)],
                          env=env, encoding="utf-8", timeout=60, dimensions=(40, 200))
    child.expect_exact(PROMPT)
    return child


def test_one_shot_while_a_repl_is_open(tmp_path, make_config, harness):
    home, log = tmp_path / "home", tmp_path / "prompts.jsonl"
    cfg = config(make_config, max_tokens=32, llm={"embedded": {"history_turns": 5}})  # the model sees every turn
    child = spawn_repl(harness, log, home, cfg)
    try:
        child.sendline("My name is Alice.")
        child.expect("first token")
        child.expect_exact(PROMPT)
        # the prompt is back at the answer; the REPL's upkeep (memories, reward, …) may go on a moment
        deadline = time.monotonic() + 60
        while graph_state(home, cfg).next and time.monotonic() < deadline:
            time.sleep(0.2)
        assert graph_state(home, cfg).next == ()

        out = agent("-m", "Please remember the number 42.", "--config", cfg, home=home)  # another terminal
        assert out.returncode == 0, out.stderr
        assert WAITING not in out.stdout  # an idle REPL does not hold the session

        child.sendline("What number did I ask you to remember?")
        child.expect("first token")
        child.expect_exact(PROMPT)
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0

    rows = history(home)
    assert [(r["turn"], r["role"]) for r in rows] == [(t, role) for t in (1, 2, 3) for role in ("user", "assistant")]
    users = [r["content"] for r in rows if r["role"] == "user"]
    answers = [r["content"] for r in rows if r["role"] == "assistant"]
    assert users == ["My name is Alice.", "Please remember the number 42.", "What number did I ask you to remember?"]
    assert all(a.strip() for a in answers)
    assert [t[:2] for t in turns(home)] == [(1, "done"), (2, "done"), (3, "done")]

    prompts = [messages for name, messages in model_calls(log) if name == "respond"]
    assert len(prompts) == 2  # the REPL's two turns
    # The REPL's second prompt contains the turn the other terminal took, in order.
    assert [m for m in prompts[1] if m[0] != "system"] == [
        ("human", users[0]), ("ai", answers[0]), ("human", users[1]), ("ai", answers[1]), ("human", users[2])]
    messages = graph_state(home, cfg).values["messages"]
    assert [(m.type, m.text) for m in messages] == [
        (role, text) for pair in zip(users, answers) for role, text in zip(("human", "ai"), pair)]


def test_second_process_waits_for_the_turn_in_progress(tmp_path, make_config, harness, procs):
    home, marker = tmp_path / "home", tmp_path / "in_tool"
    tools_cfg, cfg = config(make_config, "tools.yaml", tools=True), config(make_config)
    first = launch(procs, [harness, "tool", marker, 6, "-m", TIME_QUESTION, "--config", tools_cfg], home)
    wait_for_marker(first, marker)
    second = launch(procs, [AGENT, "-m", "Hello there!", "--config", cfg], home)
    seen = bytearray()
    read_until(second, lambda text: WAITING in text, seen=seen)
    assert first.poll() is None  # it really is waiting for the first one, which is still in its tool
    assert first.wait(timeout=60) == 0, first.stderr.read().decode()
    assert second.wait(timeout=60) == 0, second.stderr.read().decode()
    out = read_until(second, lambda text: "first token" in text, seen=seen)
    assert "was interrupted" not in out

    rows = history(home)
    assert [(r["turn"], r["role"]) for r in rows] == [
        (1, "user"), (1, "assistant"), (1, "tool"), (1, "assistant"), (2, "user"), (2, "assistant")]
    assert rows[0]["content"] == TIME_QUESTION and rows[4]["content"] == "Hello there!"
    t1, t2 = turns(home)
    assert t1[1] == t2[1] == "done" and t1[4] <= t2[4]
    messages = graph_state(home, cfg).values["messages"]  # one thread, in the order the turns ran
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai", "human", "ai"]
    assert messages[0].text == TIME_QUESTION and messages[4].text == "Hello there!"
    assert_no_dangling_tool_calls(messages)


def test_waiting_process_recovers_when_the_holder_is_killed(tmp_path, make_config, harness, procs):
    home, marker = tmp_path / "home", tmp_path / "in_tool"
    tools_cfg, cfg = config(make_config, "tools.yaml", tools=True), config(make_config)
    first = launch(procs, [harness, "tool", marker, 60, "-m", TIME_QUESTION, "--config", tools_cfg], home)
    wait_for_marker(first, marker)
    second = launch(procs, [AGENT, "-m", "Hello there!", "--config", cfg], home)
    seen = bytearray()
    read_until(second, lambda text: WAITING in text, seen=seen)
    os.kill(second.pid, signal.SIGSTOP)  # hold the waiter until the killed holder is reaped
    try:
        kill9(first)
        assert [r["content"] for r in history(home) if r["role"] == "user"] == [TIME_QUESTION, "Hello there!"]
    finally:
        os.kill(second.pid, signal.SIGCONT)
    assert second.wait(timeout=60) == 0, second.stderr.read().decode()
    out = read_until(second, lambda text: "first token" in text, seen=seen)
    assert f"turn #1 was interrupted: {CRASHED}" in out

    assert [t[:3] for t in turns(home)] == [(1, "interrupted", CRASHED), (2, "done", None)]
    messages = graph_state(home, cfg).values["messages"]
    assert_no_dangling_tool_calls(messages)
    assert [m.type for m in messages] == ["human", "ai", "tool", "ai", "human", "ai"]
    assert messages[4].text == "Hello there!" and messages[5].text.strip()


class EchoChat(ScriptedChat):
    """Answers every call with the latest user message echoed, slowly enough for turns to overlap."""

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.calls.append(list(messages))
        text = [m for m in messages if m.type == "human"][-1].text
        for piece in ("echo:", " ", text):
            time.sleep(0.02)
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))


def test_ten_clients_at_once(tmp_path, make_config):
    home, cfg = str(tmp_path / "home"), str(make_config({"agent": {"max_tool_rounds": 0}}))
    model = EchoChat()
    start = threading.Barrier(10)
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            ctx = Context(home=home, config=cfg)  # each client its own context and session
            install(ctx, model)
            session = Session(ctx)
            start.wait(timeout=30)
            results[i] = list(session.turn(f"message {i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)

    for i, events in results.items():
        assert "done" in dict(events)
        assert "".join(data for kind, data in events if kind == "token") == f"echo: message {i}"
    assert sum(any(kind == "notice" and WAITING in data for kind, data in events) for events in results.values()) >= 1

    session = Session(Context(home=home, config=cfg))
    rows = session.store.history()
    assert len(rows) == 20
    assert [(r["turn"], r["role"]) for r in rows] == [(t, role) for t in range(1, 11) for role in ("user", "assistant")]
    for user, answer in zip(rows[::2], rows[1::2]):
        assert answer["content"] == "echo: " + user["content"]
    assert sorted(r["content"] for r in rows[::2]) == sorted(f"message {i}" for i in range(10))
    assert [t[1] for t in turns(home)] == ["done"] * 10

    messages = session.messages()  # one thread of 10 (question, answer) pairs, nothing lost
    assert [m.type for m in messages] == ["human", "ai"] * 10
    assert all(a.text == "echo: " + h.text for h, a in zip(messages[::2], messages[1::2]))
    # Every call saw every turn taken before it: the thread never forked.
    order = [m.text for m in messages]
    seen = sorted(([m.text for m in call if m.type != "system"] for call in model.calls), key=len)
    assert seen == [order[: 2 * k + 1] for k in range(10)]


# ---------------------------------------------------------------- read-only data folder


def test_read_only_data_folder_fails_clearly(tmp_path, make_config):
    home, cfg = tmp_path / "home", config(make_config)
    assert agent("-m", "hi", "--config", cfg, home=home).returncode == 0
    before = (home / "agent.db").read_bytes()
    try:
        subprocess.run(["chattr", "+i", str(home)], check=True)  # immutable: not even root can write in it
        out = agent("-m", "hi again", "--config", cfg, home=home)
    finally:
        subprocess.run(["chattr", "-i", str(home)], check=True)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert str(home / "agent.db") in out.stderr and "cannot write" in out.stderr, out.stderr
    assert (home / "agent.db").read_bytes() == before
    assert out.stderr.count("\n") == 1, out.stderr  # one line, even where stderr is not a terminal
