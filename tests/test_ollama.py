"""The Ollama backend path over real HTTP: the real `ChatOllama` talks to tests/ollama_server.py,
which answers from the real embedded model. Covers choosing Ollama, the fallback notices,
a full CLI turn, streaming, tool calls, and a server dying mid-answer."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import ollama
import pytest
import yaml
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_ollama import ChatOllama

from conftest import settings_for_tests
from graph.context import Context
from graph.models import llm
from graph.tools import builtin
from graph.tools.clock import current_time
from ollama_server import OllamaServer

ROOT = Path(__file__).resolve().parent.parent
MODEL = "qwen2:7b-instruct"  # what the server claims to have (the config default)
STORY = "Tell me a long story about a dragon and a knight."


@pytest.fixture(scope="module")
def module_server():
    with OllamaServer(models=[MODEL, "smollm2:latest"]) as server:
        yield server


@pytest.fixture
def server(module_server):
    module_server.die_after_chunks = None
    module_server.requests.clear()
    module_server.replies.clear()
    module_server.deaths = 0
    yield module_server
    module_server.die_after_chunks = None


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def make_ctx(tmp_path, base_url: str, model: str = MODEL, backend: str = "auto") -> Context:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(settings_for_tests({"llm": {
        "backend": backend, "temperature": 0, "max_tokens": 48,
        "ollama": {"base_url": base_url, "model": model, "num_ctx": 2048, "connect_timeout_s": 2}}})))
    return Context(home=str(tmp_path / "home"), config=str(cfg))


# (a) choosing Ollama

def test_probe_and_resolve_pick_ollama(tmp_path, server):
    ctx = make_ctx(tmp_path, server.url)
    assert llm.probe_ollama(ctx.settings) == ""
    backend = llm.resolve(ctx.settings)
    assert (backend.name, backend.model, backend.notice) == ("ollama", MODEL, "")
    assert isinstance(backend.chat, ChatOllama) and backend.chat.num_ctx == 2048
    assert llm.active(ctx) is llm.active(ctx)  # resolved once per process


def test_model_without_tag_matches_latest(tmp_path, server):
    ctx = make_ctx(tmp_path, server.url, model="smollm2")
    assert llm.probe_ollama(ctx.settings) == ""
    assert llm.resolve(ctx.settings).name == "ollama"


# (b) fallback and its notices

def test_missing_model_falls_back_to_embedded_with_pull_notice(tmp_path, server):
    ctx = make_ctx(tmp_path, server.url, model="llama3.2:1b")
    backend = llm.resolve(ctx.settings)
    assert backend.name == "embedded"
    assert "ollama pull llama3.2:1b" in backend.notice and "embedded model" in backend.notice
    notes: list[str] = []
    for _ in range(2):  # the turn is answered, and the notice is given once, not every turn
        answer, meta = llm.respond(ctx, [HumanMessage("Say hello.")], [], notify=notes.append)
        assert answer.text.strip() and meta["backend"] == "embedded"
    assert len(notes) == 1 and "ollama pull llama3.2:1b" in notes[0]


def test_unreachable_ollama_falls_back_with_notice(tmp_path):
    url = closed_port_url()
    backend = llm.resolve(make_ctx(tmp_path, url).settings)
    assert backend.name == "embedded"
    assert "not reachable" in backend.notice and url in backend.notice and "ollama serve" in backend.notice


def test_backend_ollama_does_not_fall_back(tmp_path, server):
    with pytest.raises(llm.BackendError, match="ollama pull llama3.2:1b"):
        llm.resolve(make_ctx(tmp_path, server.url, model="llama3.2:1b", backend="ollama").settings)
    with pytest.raises(llm.BackendError, match="not reachable"):
        llm.resolve(make_ctx(tmp_path, closed_port_url(), backend="ollama").settings)


# (c) a full turn through the CLI

def test_cli_turn_through_ollama(tmp_path, server):
    ctx = make_ctx(tmp_path, server.url)
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    env.pop("OLLAMA_HOST", None)
    common = ["--home", ctx.home, "--config", ctx.config]
    run = subprocess.run([sys.executable, "agent.py", "-m", "Say hello to me in one short sentence.", *common],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    assert "embedded model" not in run.stdout  # no fallback notice
    history = subprocess.run([sys.executable, "agent.py", "history", "--json", *common],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    rows = json.loads(history.stdout)
    answer = rows[-1]
    assert rows[0]["role"] == "user" and answer["role"] == "assistant" and answer["content"].strip()
    assert answer["meta"]["backend"] == "ollama" and answer["meta"]["model"] == MODEL
    assert " ".join(answer["content"].split()) in " ".join(run.stdout.split())  # the answer was printed
    assert "ollama · first token" in run.stdout
    request = server.requests[-1]  # what ChatOllama sent: explicit num_ctx, our tools, streaming
    assert request["model"] == MODEL and request["options"]["num_ctx"] == 2048 and request["stream"]
    assert request["options"]["num_predict"] == 48
    assert request["messages"][0]["role"] == "system"
    sent = {t["function"]["name"]: t["function"] for t in request["tools"]}  # native tool calling: full schemas
    assert set(sent) == {t.name for t in builtin()}
    assert sent["run_command"]["parameters"]["required"] == ["command"]


def test_a_fold_asks_for_no_more_than_the_summary_may_hold(tmp_path, server):
    ctx = make_ctx(tmp_path, server.url)
    old = [HumanMessage("What is photosynthesis?"), AIMessage("Plants turn light, water and CO2 into sugar.")]
    summary, folded = llm.summarize(ctx, "", old)
    limit = min(ctx.settings.session.summary_tokens, llm.active(ctx).context_window // 4)
    assert folded == 2 and summary
    assert server.requests[-1]["options"]["num_predict"] == limit != ctx.settings.llm.max_tokens  # not the answers'


# (d) streaming

def test_chatollama_streams_several_chunks(server):
    chat = ChatOllama(model=MODEL, base_url=server.url, num_predict=48, temperature=0)
    chunks = list(chat.stream("Say hello and introduce yourself."))
    texts = [c.text for c in chunks if c.text]
    assert len(texts) >= 3 and "".join(texts).strip()
    total = sum(chunks[1:], chunks[0])
    assert total.usage_metadata["output_tokens"] == len(texts)  # eval_count of the final chunk


def test_non_streaming_chat(server):
    reply = ollama.Client(host=server.url).chat(model=MODEL, messages=[{"role": "user", "content": "Say hi."}],
                                                stream=False, options={"num_predict": 24})
    assert reply.done and reply.done_reason in ("stop", "length") and reply.message.content.strip()
    with pytest.raises(ollama.ResponseError, match="model 'nope' not found") as err:
        ollama.Client(host=server.url).chat(model="nope", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 404


# (e) tool calls

def test_tool_call_round_trip(server):
    chat = ChatOllama(model=MODEL, base_url=server.url, num_predict=48, temperature=0).bind_tools([current_time])
    question = HumanMessage("What time is it now?")
    call = chat.invoke([question])
    assert [c["name"] for c in call.tool_calls] == ["current_time"]
    assert [t["function"]["name"] for t in server.requests[-1]["tools"]] == ["current_time"]
    result = ToolMessage(current_time.invoke({}), tool_call_id=call.tool_calls[0]["id"])
    answer = chat.invoke([question, call, result])
    assert answer.text.strip() and not answer.tool_calls
    sent = server.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "current_time"


# (f) the server dying mid-answer

def test_death_mid_answer_keeps_the_partial_answer(tmp_path, server):
    server.die_after_chunks = 3
    ctx = make_ctx(tmp_path, server.url)
    notes: list[str] = []
    answer, meta = llm.respond(ctx, [HumanMessage(STORY)], [], notify=notes.append)
    assert server.deaths == 1
    assert answer.text.strip() and meta["backend"] == "ollama" and meta["tokens"] == 3
    assert meta["interrupted"].startswith("ollama failed") and "incomplete chunked read" in meta["interrupted"]
    assert answer.response_metadata["interrupted"] == meta["interrupted"]
    assert len(notes) == 1 and "partial answer is kept" in notes[0]
    assert llm.active(ctx).name == "ollama"  # a partial answer does not switch backends


def test_death_before_any_token_falls_back_under_auto(tmp_path, server):
    server.die_after_chunks = 0
    ctx = make_ctx(tmp_path, server.url)
    notes: list[str] = []
    answer, meta = llm.respond(ctx, [HumanMessage("Say hello.")], [], notify=notes.append)
    assert server.deaths == 1
    assert answer.text.strip() and meta["backend"] == "embedded" and "interrupted" not in meta
    assert len(notes) == 1 and "ollama failed" in notes[0] and "embedded model" in notes[0]
    assert llm.active(ctx).name == "embedded" and "ollama failed" in llm.active(ctx).notice


def test_death_before_any_token_under_backend_ollama_is_an_error(tmp_path, server):
    server.die_after_chunks = 0
    ctx = make_ctx(tmp_path, server.url, backend="ollama")
    with pytest.raises(llm.BackendError, match="message is saved"):
        llm.respond(ctx, [HumanMessage("Say hello.")], [], notify=pytest.fail)
    assert server.deaths == 1 and llm.active(ctx).name == "ollama"
