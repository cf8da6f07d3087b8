"""The embedded model in its own process (llama_process.py) and the AMX-safe setting (cpu.py):
a native crash is one clear line and the agent goes on, a model that crashes again at once
is not restarted forever, Ctrl-C stops an answer every time, extra buffer types are off
where AMX is reported (and as config.yaml says), and `status` names the build and CPU."""

import json
import subprocess
import sys

import pexpect
import pytest
from langchain_core.messages import HumanMessage

from conftest import ROOT, agent_env
from graph.config import load_settings
from graph.models import cpu, embedded, llm
from graph.models.llama_process import CRASH_FILE, ModelCrashed
from test_repl import PROMPT, history, spawn

AMX = frozenset({"fpu", "avx2", "avx512f", "amx_bf16", "amx_tile", "amx_int8"})
NO_AMX = frozenset({"fpu", "avx2", "fma"})


@pytest.fixture(autouse=True)
def _fresh_model_processes():
    """Model processes started under a test's crash switch end with the test."""
    yield
    embedded.close_processes()


def crash_next(tmp_path, monkeypatch, answers: int):
    """The next `answers` answers of model processes started from now on die with SIGSEGV mid-answer."""
    flag = tmp_path / "crash"
    flag.write_text(str(answers))
    monkeypatch.setenv(CRASH_FILE, str(flag))
    return flag


def test_a_crash_mid_answer_is_one_line_the_turn_is_kept_and_the_repl_goes_on(tmp_path, make_config, monkeypatch):
    home = tmp_path / "home"
    cfg = make_config({"llm": {"backend": "embedded", "max_tokens": 48, "temperature": 0},
                       "agent": {"max_tool_rounds": 0}, "reasoning": {"mode": "off"}})
    crash_next(tmp_path, monkeypatch, 1)
    child = spawn(home, cfg)
    child.sendline("What is the capital of France?")
    child.expect(r"the embedded model crashed \(SIGSEGV, signal 11\); it restarts with the next request\. "
                 r"The partial answer is kept")
    child.expect(r"\[embedded failed: the embedded model crashed")
    child.expect_exact(PROMPT)  # the REPL is alive
    child.sendline("What is the capital of Italy?")
    child.expect(r"embedded · first token [\d.]+ s")  # answered by a new model process
    child.expect_exact(PROMPT)
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    print(child.before)
    rows = history(home)
    assert [r["content"] for r in rows if r["role"] == "user"] == ["What is the capital of France?",
                                                                    "What is the capital of Italy?"]
    first, second = [r for r in rows if r["role"] == "assistant"]
    assert "crashed (SIGSEGV" in first["meta"]["interrupted"] and first["content"]  # kept and marked
    assert second["content"].strip() and "interrupted" not in second["meta"]


def test_a_model_that_crashes_again_at_once_is_not_restarted_forever(tmp_path, monkeypatch):
    flag = crash_next(tmp_path, monkeypatch, 5)
    chat = embedded.EmbeddedChat(model_path=str(embedded.default_model_path()), max_tokens=24, temperature=0,
                                 n_ctx=1024)
    ask = [HumanMessage("Say hello.")]
    with pytest.raises(ModelCrashed, match=r"crashed \(SIGSEGV, signal 11\); it restarts with the next request"):
        list(chat.stream(ask))
    with pytest.raises(ModelCrashed, match="crashed again .* right after a restart, so it is not restarted; "
                                           "try `llm.embedded.extra_buffers: off`"):
        list(chat.stream(ask))
    with pytest.raises(ModelCrashed, match="not restarted"):
        list(chat.stream(ask))
    assert flag.read_text() == "3"  # no third process was started
    chat.process.close()


def test_a_crash_between_answers_is_survived_and_the_prompt_cache_still_works(tmp_path, monkeypatch):
    """After one crash the next answer comes from a new process: the same greedy answer as before."""
    chat = embedded.EmbeddedChat(model_path=str(embedded.default_model_path()), max_tokens=16, temperature=0,
                                 n_ctx=1024)
    ask = [HumanMessage("What is the capital of France?")]
    before = chat.invoke(ask).text
    crash_next(tmp_path, monkeypatch, 1)
    chat.process.close()  # the next process reads the crash switch
    with pytest.raises(ModelCrashed):
        chat.invoke(ask)
    assert chat.invoke(ask).text == before
    assert chat.invoke(ask).text == before  # the same prompt again, from the KV cache


def test_ctrl_c_stops_the_answer_every_time(tmp_path, make_config):
    home = tmp_path / "home"
    cfg = make_config({"llm": {"backend": "embedded", "max_tokens": 2000, "temperature": 0.9},
                       "agent": {"max_tool_rounds": 0}, "reasoning": {"mode": "off"}})
    child = spawn(home, cfg)
    for n in range(3):
        child.sendline(f"Write a very long story about dragon number {n} who learns to cook, with many chapters.")
        child.expect_exact("\x1b[?2004l")  # prompt_toolkit has handed the terminal back: the turn runs
        child.expect(r"\w+ \w+ \w+ ")  # the first words of the answer have streamed
        child.sendintr()  # once: no second press needed
        child.expect_exact("[stopped by the user]", timeout=10)
        child.expect_exact(PROMPT)
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    answers = [r for r in history(home) if r["role"] == "assistant"]
    assert len(answers) == 3
    assert all(a["meta"]["interrupted"] == "stopped by the user" and a["meta"]["tokens"] < 2000 for a in answers)


def test_amx_turns_extra_buffers_off_and_config_decides_otherwise():
    assert cpu.extra_buffers("auto", AMX)[0] is False
    assert "AMX" in cpu.extra_buffers("auto", AMX)[1]
    assert cpu.extra_buffers("auto", NO_AMX)[0] is True
    assert cpu.extra_buffers("on", AMX) == (True, "on (llm.embedded.extra_buffers)")
    assert cpu.extra_buffers("off", NO_AMX) == (False, "off (llm.embedded.extra_buffers)")


@pytest.mark.parametrize("flags, setting, expected", [(AMX, "auto", False), (NO_AMX, "auto", True),
                                                      (AMX, "on", True), (NO_AMX, "off", False)])
def test_the_model_process_loads_with_the_setting_for_this_cpu(make_config, monkeypatch, flags, setting, expected):
    """What the model process really loaded with (llama.cpp's own model parameters)."""
    monkeypatch.setattr(cpu, "cpu_flags", lambda: flags)
    settings = load_settings(make_config({"llm": {"backend": "embedded", "max_tokens": 16,
                                                  "embedded": {"extra_buffers": setting, "n_ctx": 512}}}))
    backend = llm.embedded_backend(settings)
    assert backend.chat.invoke([HumanMessage("Hi")]).text.strip()
    assert backend.chat.process.info["extra_buffers"] is expected
    backend.chat.process.close()


def test_status_names_the_llama_cpp_build_cpu_features_and_extra_buffers(tmp_path):
    home = tmp_path / "home"
    out = subprocess.run([sys.executable, str(ROOT / "agent.py"), "status", "--json", "--backend", "embedded"],
                         capture_output=True, text=True, env=agent_env(home), timeout=120)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)["embedded"]
    assert info["llama_cpp"]["version"] and isinstance(info["llama_cpp"]["features"], list)
    assert isinstance(info["extra_buffers"], bool) and info["extra_buffers_why"]
    assert set(info["flags"]) <= set(cpu.SHOWN)
    table = subprocess.run([sys.executable, str(ROOT / "agent.py"), "status", "--backend", "embedded"],
                           capture_output=True, text=True, env=agent_env(home), timeout=120).stdout
    assert "llama-cpp-python" in table and "extra buffer types" in table
