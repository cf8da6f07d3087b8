"""Native thinking through Ollama over real HTTP: the real `ChatOllama` talks to
tests/ollama_server.py, which lists qwen3:0.6b as a thinking model and streams its
thoughts in `message.thinking` (the embedded model with "<think>" prefilled).
Covers: the thinking capability choosing `think_style`, `think` sent only to thinking
models (Ollama refuses it otherwise), the prompted <think> instruction only for the
others, thoughts stored apart from the answer, and earlier thoughts never sent back."""

import json
import subprocess
import sys

import ollama
import pytest
import yaml
from langchain_core.messages import AIMessage, HumanMessage
from langchain_ollama import ChatOllama

from conftest import ROOT, agent_env, settings_for_tests
from graph.context import Context
from graph.models import llm, prompts
from ollama_server import OllamaServer

THINKER = "qwen3:0.6b"  # listed by the server as a thinking model
PLAIN = "qwen2:7b-instruct"  # not a thinking model


@pytest.fixture(scope="module")
def module_server():
    with OllamaServer(models=[PLAIN, THINKER]) as server:
        yield server


@pytest.fixture
def server(module_server):
    module_server.requests.clear()
    module_server.replies.clear()
    yield module_server


def write_config(tmp_path, url: str, model: str, mode: str = "on") -> Context:
    """backend: ollama, so a refused request fails the turn instead of falling back to the embedded model."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(settings_for_tests({
        "llm": {"backend": "ollama", "temperature": 0, "max_tokens": 64,
                "ollama": {"base_url": url, "model": model, "num_ctx": 2048, "connect_timeout_s": 2}},
        "agent": {"max_tool_rounds": 0},
        "reasoning": {"mode": mode, "max_tokens": 64}})))
    return Context(home=str(tmp_path / "home"), config=str(cfg))


def agent(ctx: Context, *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "agent.py", *args, "--home", ctx.home, "--config", ctx.config],
                         cwd=ROOT, env=agent_env(ctx.home), capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def turn(ctx: Context, text: str) -> tuple[str, dict]:
    """One CLI turn; its printed output and the assistant row it left in the transcript."""
    out = agent(ctx, "-m", text).stdout
    rows = json.loads(agent(ctx, "history", "--json", timeout=60).stdout)
    assert rows[-1]["role"] == "assistant" and rows[-1]["content"].strip()
    return out, rows[-1]


def system_texts(request: dict) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "system"]


# the test server itself

def test_server_streams_thoughts_apart_and_refuses_think_without_the_capability(server):
    client = ollama.Client(host=server.url)
    assert "thinking" in client.show(THINKER).capabilities and "thinking" not in client.show(PLAIN).capabilities
    chat = ChatOllama(model=THINKER, base_url=server.url, num_predict=32, temperature=0, reasoning=True)
    chunks = list(chat.stream("Why is the sky blue?"))
    assert server.requests[-1]["think"] is True
    thoughts = "".join(c.additional_kwargs.get("reasoning_content", "") for c in chunks)
    assert thoughts.strip() and "<think>" not in thoughts and "<think>" not in "".join(c.text for c in chunks)
    with pytest.raises(ollama.ResponseError) as err:  # as Ollama: `think` for a model that cannot
        client.chat(model=PLAIN, messages=[{"role": "user", "content": "hi"}], think=True)
    assert err.value.status_code == 400 and err.value.error == f'"{PLAIN}" does not support thinking'
    plain = client.chat(model=THINKER, messages=[{"role": "user", "content": "Say hi."}], think=False, stream=False,
                        options={"num_predict": 16})
    assert plain.message.content.strip() and not plain.message.thinking


# (a) the capability decides how the model is made to think

def test_thinking_capability_resolves_to_native(tmp_path, server):
    thinker = llm.resolve(write_config(tmp_path, server.url, THINKER).settings)
    assert (thinker.name, thinker.model, thinker.think_style) == ("ollama", THINKER, "native")
    plain = llm.resolve(write_config(tmp_path, server.url, PLAIN).settings)
    assert (plain.name, plain.model, plain.think_style) == ("ollama", PLAIN, "prompt")


# (b) reasoning on, thinking model: Ollama's `think`, thoughts kept apart

def test_native_thinking_turn(tmp_path, server):
    ctx = write_config(tmp_path, server.url, THINKER, mode="on")
    out, answer = turn(ctx, "Why is the sky blue?")
    first, *rest = server.requests
    assert first["model"] == THINKER and first["think"] is True
    assert all(r["think"] is False for r in rest)  # only a forced answer (thinking cut) may follow, without think
    for request in server.requests:  # a thinking model is never asked for <think> in the prompt
        assert not any("<think>" in text for text in system_texts(request))
    thought = server.replies[0]["thinking"]  # what Ollama streamed in message.thinking
    assert thought.strip() and answer["reasoning"] == thought  # stored as reasoning, in full
    assert answer["content"].strip() == server.replies[-1]["content"].strip()  # the answer: content only
    assert "<think>" not in answer["content"] and "</think>" not in answer["content"]
    meta = answer["meta"]
    assert meta["backend"] == "ollama" and meta["model"] == THINKER
    assert isinstance(meta["reasoning"]["score"], float) and 0 <= meta["reasoning"]["score"] <= 1
    assert meta["thought_tokens"] > 0 and meta["thought_s"] >= 0
    assert "thought for" in out and " ".join(answer["content"].split()) in " ".join(out.split())


# (c) reasoning off, thinking model: think false, nothing stored as reasoning

def test_thinking_model_with_reasoning_off(tmp_path, server):
    ctx = write_config(tmp_path, server.url, THINKER, mode="off")
    out, answer = turn(ctx, "Why is the sky blue?")
    assert [r["think"] for r in server.requests] == [False]
    assert answer["reasoning"] is None and "reasoning" not in answer["meta"] and "thought_tokens" not in answer["meta"]
    assert "thought for" not in out


# (d) reasoning on, model without thinking: no `think`, the <think> instruction instead

def test_prompted_thinking_for_a_model_without_the_capability(tmp_path, server):
    ctx = write_config(tmp_path, server.url, PLAIN, mode="on")
    turn(ctx, "Why is the sky blue?")  # a `think` would have been refused with 400 and failed the turn
    assert server.requests and all("think" not in r for r in server.requests)
    assert prompts.THINK in system_texts(server.requests[0])[-1]
    assert prompts.THINK not in system_texts(server.requests[0])[0]


# (e) earlier thoughts are not sent back

def test_chatollama_would_send_kept_reasoning_back(server):
    """Why (e) checks `thinking`: langchain-ollama sends `reasoning_content` back as `thinking`."""
    chat = ChatOllama(model=THINKER, base_url=server.url, num_predict=8, temperature=0)
    chat.invoke([HumanMessage("hi"), AIMessage("hello", additional_kwargs={"reasoning_content": "secret"}),
                 HumanMessage("again")])
    assert server.requests[-1]["messages"][1]["thinking"] == "secret"


def test_second_turn_does_not_send_the_first_turns_reasoning(tmp_path, server):
    ctx = write_config(tmp_path, server.url, THINKER, mode="on")
    _, first = turn(ctx, "Why is the sky blue?")
    assert first["reasoning"].strip()
    server.requests.clear()
    server.replies.clear()
    _, second = turn(ctx, "Explain how rainbows form.")
    request = server.requests[0]  # the second turn's main request
    assert request["think"] is True
    earlier = [m for m in request["messages"] if m["role"] == "assistant"]
    assert [m["content"] for m in earlier] == [first["content"]]  # the first answer was sent back...
    assert "thinking" not in earlier[0]  # ...without its reasoning
    for r in server.requests:
        assert not any(m.get("thinking") for m in r["messages"])
    assert second["reasoning"].strip() and second["reasoning"] == server.replies[0]["thinking"]
