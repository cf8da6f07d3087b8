"""`langgraph dev` serves the agent graph, the way LangGraph Studio uses it.

Starts the real dev server (langgraph-cli[inmem]) from the repo's langgraph.json on a
free loopback port, as a subprocess in its own process group, with a temporary data
folder and everything that would reach the internet switched off:

  --no-browser                    no Studio tab (and no LangSmith org lookup)
  --no-reload                     no file watcher
  LANGGRAPH_CLI_NO_ANALYTICS=1    the CLI's usage report
  LANGGRAPH_NO_VERSION_CHECK=1    the server's PyPI version check
  LANGSMITH_TRACING=false         no LangSmith tracing

Then, through the LangGraph SDK, it runs one turn on a new thread with the embedded
model (chosen by a config file passed as the run's context, as Studio would) and checks
that an answer came back and that the data folder's transcript recorded both sides.
Takes about 10 s: server start-up plus one short answer from the embedded model.
"""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_sync_client

ROOT = Path(__file__).resolve().parent.parent
GRAPH_ID = "agent"  # the key under "graphs" in langgraph.json
START_TIMEOUT_S = 120

OFFLINE_ENV = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "1",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LOG_COLOR": "false",  # plain server output in failure messages
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


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
            pytest.fail(f"langgraph dev exited with code {proc.returncode}:\n{tail(log)}")
        try:
            if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"langgraph dev did not answer {url}/ok within {START_TIMEOUT_S} s:\n{tail(log)}")


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server's whole process group (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture
def studio(tmp_path):
    """A running `langgraph dev` server; yields (url, data folder, server log)."""
    home = tmp_path / "home"
    log = tmp_path / "langgraph-dev.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, AGENT_HOME=str(home), PYTHONUNBUFFERED="1", **OFFLINE_ENV)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown can end all of it
        )
    leftover = ROOT / ".langgraph_api"  # the server's own state, kept under the cwd
    existed = leftover.exists()
    try:
        wait_until_ready(proc, url, log)
        yield url, home, log
    finally:
        stop(proc)
        if not existed:
            shutil.rmtree(leftover, ignore_errors=True)


def test_langgraph_dev_serves_the_graph_and_records_the_turn(studio, make_config):
    url, home, log = studio
    config = make_config({"llm": {"backend": "embedded", "temperature": 0, "max_tokens": 64}})
    client = get_sync_client(url=url, timeout=httpx.Timeout(300, connect=10))

    assistants = client.assistants.search(graph_id=GRAPH_ID)
    assert assistants, f"the server has no assistant for graph {GRAPH_ID!r}:\n{tail(log)}"

    thread = client.threads.create()
    result = client.runs.wait(
        thread["thread_id"], GRAPH_ID,
        input={"messages": [{"role": "user", "content": "Say hello."}]},
        context={"config": str(config)},
    )

    messages = result["messages"]
    assert messages[0]["type"] == "human" and messages[0]["content"] == "Say hello."
    last = messages[-1]
    assert last["type"] == "ai" and not last.get("tool_calls"), last
    answer = last["content"]
    assert isinstance(answer, str) and answer.strip(), f"empty answer: {last}"

    with sqlite3.connect(home / "agent.db") as db:
        rows = db.execute("SELECT role, content, meta FROM transcript ORDER BY id").fetchall()
    assert rows[0][:2] == ("user", "Say hello.")
    assert rows[-1][:2] == ("assistant", answer)
    # The run's context reached the nodes: the config file chose the embedded model.
    assert json.loads(rows[-1][2])["backend"] == "embedded"


def test_studio_pauses_for_approval_and_resumes(studio, make_config):
    """A command needs the user's yes: the run stops on an interrupt that Studio shows, and
    resuming with "no" finishes the turn without running it."""
    url, home, log = studio
    # make_config keeps the learned style policy off: its sampling would vary the small model's tool call
    config = make_config({"llm": {"backend": "embedded", "temperature": 0, "max_tokens": 48},
                          "reasoning": {"mode": "off"}})
    client = get_sync_client(url=url, timeout=httpx.Timeout(300, connect=10))
    thread = client.threads.create()
    paused = client.runs.wait(thread["thread_id"], GRAPH_ID, context={"config": str(config)},
                              input={"messages": [{"role": "user", "content": "Run the command `ls -la`."}]})
    asked = paused["__interrupt__"][0]["value"]
    assert asked["tool"] == "run_command" and asked["args"]["command"] == "ls -la", f"{paused}\n{tail(log)}"
    assert asked["always"] == "ls -la" and "policy is ask" in asked["reason"]
    done = client.runs.wait(thread["thread_id"], GRAPH_ID, context={"config": str(config)}, command={"resume": "no"})
    tool = [m for m in done["messages"] if m["type"] == "tool"][0]
    assert "declined" in tool["content"] and done["messages"][-1]["type"] == "ai"


def test_the_evolution_subgraph_is_served_and_runs(studio, make_config):
    """The evolution subgraph is its own graph in Studio (its nodes visible), and a run from
    there breeds and scores genomes with the embedded model into the same archive."""
    url, home, log = studio
    config = make_config({"llm": {"backend": "embedded", "temperature": 0, "max_tokens": 48},
                          "evolution": {"eval_cases": 1}})
    client = get_sync_client(url=url, timeout=httpx.Timeout(300, connect=10))
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
    assert runs == [("done", "studio")] and scored >= 3
