"""LangGraph Studio on the real session, through the server Studio talks to.

Starts `agent.py studio` as the user does (it runs `langgraph dev`, langgraph-cli[inmem], on
the repo's langgraph.json) on a free loopback port, as a subprocess in its own process group,
with a temporary data folder, offline: `agent.py studio` opens no browser and turns off the
CLI's analytics, the server's PyPI version check and LangSmith tracing by itself. Then,
through the LangGraph SDK (what Studio uses), it checks that the session's turns made by
`agent.py -m` and the REPL are the server's session thread (state and checkpoint history),
that a turn sent through the server joins the same session (the transcript, `history`, the
upkeep, the turn lock), that an approval pauses and resumes, that the evolution graph runs
into the same archive, and that nothing from the server can delete the session or run the
agent elsewhere. The model is the real embedded one, chosen by a config file passed as the
run's context, as Studio would. Each test starts its own server (about 5 s).
"""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pexpect
import pytest
from filelock import FileLock
from langgraph_sdk import get_sync_client
from langgraph_sdk.errors import BadRequestError

from conftest import ROOT, agent_env
from graph.studio import SESSION_THREAD

START_TIMEOUT_S = 120
PROMPT = "›"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, chars: int = 6000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.exists() else ""


def wait_until_ready(proc: subprocess.Popen, url: str, log: Path) -> None:
    """Poll GET /ok until the server answers; fail with its output if it exits or never does."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"agent.py studio exited with code {proc.returncode}:\n{tail(log)}")
        try:
            if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"agent.py studio did not answer {url}/ok within {START_TIMEOUT_S} s:\n{tail(log)}")


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server's whole process group (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def agent(home: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "agent.py"), *args], capture_output=True, text=True,
                          env=agent_env(home), timeout=timeout)


def history(home: Path) -> list[dict]:
    return json.loads(agent(home, "history", "--json").stdout)


@pytest.fixture
def studio(tmp_path):
    """A running `agent.py studio`; yields (SDK client, data folder, server log)."""
    home = tmp_path / "home"
    log = tmp_path / "studio.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # the server's own upkeep (after each run) reads config.yaml and the environment: no background evolution
    env = agent_env(home, LOG_COLOR="false", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
                    AGENT_EVOLUTION__EVERY_TURNS="0", AGENT_TOOLS__BROWSER__ENABLED="false")
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "agent.py"), "studio", "--port", str(port)],
                                cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group, so teardown ends all of it
    try:
        wait_until_ready(proc, url, log)
        yield get_sync_client(url=url, timeout=httpx.Timeout(300, connect=10)), home, log
    finally:
        stop(proc)
    assert not (ROOT / ".langgraph_api").exists()  # the server's scratch is in the data folder
    assert (home / "studio" / ".langgraph_api").is_dir()


def config_for(make_config):
    """Short answers from the embedded model; no tools, and no long-term memory (whose embedder,
    loaded in each process, would take most of the test's time)."""
    return make_config({"llm": {"backend": "embedded", "temperature": 0, "max_tokens": 32},
                        "reasoning": {"mode": "off"}, "agent": {"max_tool_rounds": 0}, "memory": {"enabled": False}})


def said(home: Path) -> list[tuple[str, str]]:
    """The transcript's (role, content), read directly (`history` is checked once per test: a process each)."""
    with sqlite3.connect(home / "agent.db") as db:
        return db.execute("SELECT role, content FROM transcript ORDER BY id").fetchall()


def human(messages: list[dict]) -> list[str]:
    return [m["content"] for m in messages if m["type"] == "human"]


def test_studio_shows_the_session_and_its_turns_join_it(studio, make_config):
    """A turn made by `agent.py -m` is the session thread's state and history; while a REPL
    holds the session, a turn through the server waits for another process's turn (its lock),
    then joins the session: transcript, `history`, upkeep; the REPL's next turn follows it."""
    client, home, log = studio
    config = config_for(make_config)
    made = agent(home, "--config", str(config), "-m", "My name is Ada.")
    assert made.returncode == 0, made.stderr

    [thread] = client.threads.search(metadata={"session": "main"})
    assert thread["thread_id"] == SESSION_THREAD and thread["metadata"]["graph_id"] == "agent"
    state = client.threads.get_state(SESSION_THREAD)
    assert human(state["values"]["messages"]) == ["My name is Ada."]
    assert state["values"]["messages"][-1]["content"] == said(home)[-1][1], f"{state}\n{tail(log)}"
    assert state["next"] == [] and state["checkpoint"]["thread_id"] == SESSION_THREAD
    past = client.threads.get_history(SESSION_THREAD, limit=100)
    assert past[0]["checkpoint"] == state["checkpoint"] and all(p["checkpoint"]["thread_id"] == SESSION_THREAD for p in past)

    env = dict(agent_env(home), PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    repl = pexpect.spawn(sys.executable, [str(ROOT / "agent.py"), "--config", str(config)], env=env,
                         encoding="utf-8", timeout=120, dimensions=(40, 200))
    try:
        repl.expect_exact(PROMPT)
        with FileLock(home / "turn.lock"):  # as another terminal mid-turn
            run = client.runs.create(SESSION_THREAD, "agent", context={"config": str(config)},
                                     input={"messages": [{"role": "user", "content": "What is my name?"}]})
            time.sleep(2)
            assert client.runs.get(SESSION_THREAD, run["run_id"])["status"] in ("pending", "running")
            assert [content for role, content in said(home) if role == "user"] == ["My name is Ada."]
        done = client.runs.join(SESSION_THREAD, run["run_id"])
        assert human(done["messages"]) == ["My name is Ada.", "What is my name?"], f"{done}\n{tail(log)}"
        answer = done["messages"][-1]
        assert answer["type"] == "ai" and answer["content"].strip()

        repl.sendline("Thank you.")
        repl.expect("first token")
        repl.expect_exact(PROMPT)
        repl.sendline("/quit")
        repl.expect(pexpect.EOF)
    finally:
        repl.close(force=True)
    rows = history(home)
    assert [(r["turn"], r["role"]) for r in rows] == [(t, role) for t in (1, 2, 3) for role in ("user", "assistant")]
    assert [r["content"] for r in rows if r["role"] == "user"] == ["My name is Ada.", "What is my name?", "Thank you."]
    assert rows[3]["content"] == answer["content"] and rows[3]["meta"]["backend"] == "embedded"
    with sqlite3.connect(home / "agent.db") as db:
        threads = db.execute("SELECT DISTINCT thread_id FROM checkpoints").fetchall()
        rewarded = db.execute("SELECT COUNT(*) FROM rewards").fetchone()[0]
    assert threads == [("main",)]  # the server's id is only a name for it
    assert rewarded == 3  # the upkeep ran for the server's turn too (each turn opens its reward)
    state = client.threads.get_state(SESSION_THREAD)
    assert human(state["values"]["messages"]) == ["My name is Ada.", "What is my name?", "Thank you."]

    elsewhere = client.threads.create()
    failed = client.runs.create(elsewhere["thread_id"], "agent", input={"messages": [{"role": "user", "content": "hi"}]})
    client.runs.join(elsewhere["thread_id"], failed["run_id"])
    assert client.runs.get(elsewhere["thread_id"], failed["run_id"])["status"] == "error"
    assert "the agent has one session" in tail(log)
    other = client.runs.create(SESSION_THREAD, "agent", context={"home": str(home.parent / "other")},
                               input={"messages": [{"role": "user", "content": "hi"}]})
    client.runs.join(SESSION_THREAD, other["run_id"])
    assert client.runs.get(SESSION_THREAD, other["run_id"])["status"] == "error"
    assert f"this server serves the session in {home}, not" in tail(log)
    with pytest.raises(BadRequestError, match="cannot delete"):
        client.threads.delete(SESSION_THREAD)
    assert len(client.threads.get_state(SESSION_THREAD)["values"]["messages"]) == 6


def test_studio_pauses_for_approval_and_resumes(studio, make_config):
    """A command needs the user's yes: the run stops on an interrupt that Studio shows, and
    resuming with "no" finishes the turn without running it."""
    client, home, log = studio
    config = make_config({"llm": {"backend": "embedded", "temperature": 0, "max_tokens": 48},
                          "reasoning": {"mode": "off"}})
    paused = client.runs.wait(SESSION_THREAD, "agent", context={"config": str(config)},
                              input={"messages": [{"role": "user", "content": "Run the command `ls -la`."}]})
    asked = paused["__interrupt__"][0]["value"]
    assert asked["tool"] == "run_command" and asked["args"]["command"] == "ls -la", f"{paused}\n{tail(log)}"
    assert asked["always"] == "ls -la" and "policy is ask" in asked["reason"]
    assert client.threads.get_state(SESSION_THREAD)["next"] == ["act"]
    done = client.runs.wait(SESSION_THREAD, "agent", context={"config": str(config)}, command={"resume": "no"})
    tool = [m for m in done["messages"] if m["type"] == "tool"][0]
    assert "declined" in tool["content"] and done["messages"][-1]["type"] == "ai"
    assert [r["role"] for r in history(home)] == ["user", "assistant", "tool", "assistant"]


def test_the_evolution_subgraph_is_served_and_runs(studio, make_config):
    """The evolution subgraph is its own graph in Studio (its nodes visible), and a run from
    there breeds and scores genomes with the embedded model into the same archive."""
    client, home, log = studio
    config = make_config({"llm": {"backend": "embedded", "temperature": 0, "max_tokens": 48},
                          "evolution": {"eval_cases": 1}})
    [assistant] = client.assistants.search(graph_id="evolution")
    drawn = client.assistants.get_graph(assistant["assistant_id"])
    assert {"seed", "score", "select", "breed", "promote"} <= {n["id"] for n in drawn["nodes"]}, drawn
    thread = client.threads.create()
    done = client.runs.wait(thread["thread_id"], "evolution", context={"config": str(config)},
                            input={"generations": 1, "population": 2})
    assert done.get("outcome") and done["generation"] == 1 and len(done["history"]) == 2, f"{done}\n{tail(log)}"
    with sqlite3.connect(home / "agent.db") as db:
        runs = db.execute("SELECT status, trigger FROM evolution_runs").fetchall()
        scored = db.execute("SELECT COUNT(*) FROM genomes WHERE status IN ('scored', 'promoted')").fetchone()[0]
        threads = db.execute("SELECT DISTINCT thread_id FROM checkpoints").fetchall()
    assert runs == [("done", "studio")] and scored >= 3
    assert threads == []  # the evolution run's own checkpoints stay in the server's memory


@pytest.mark.parametrize("damage, says", [
    ("newer", "written by a newer version of the agent"),
    ("corrupt", "the database is corrupt"),
])
def test_studio_serves_nothing_when_the_session_cannot_be_opened_safely(tmp_path, damage, says):
    home = tmp_path / "home"
    home.mkdir()
    if damage == "newer":
        assert agent(home, "history").returncode == 0  # a session of this version, then a newer one's migration
        with sqlite3.connect(home / "agent.db") as db:
            db.execute("INSERT INTO migrations VALUES ('9999_from_the_future', 0)")
    else:
        (home / "agent.db").write_bytes(b"not a database" * 100)
    before = (home / "agent.db").read_bytes()
    out = agent(home, "studio", "--port", str(free_port()), timeout=60)
    assert out.returncode == 1 and out.stdout == "", out
    assert len(out.stderr.strip().splitlines()) == 1 and says in out.stderr, out.stderr
    assert (home / "agent.db").read_bytes() == before
