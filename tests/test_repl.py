"""The REPL on a real terminal (pexpect pty) with the real embedded model: banner, streaming,
slash commands, Japanese input, Ctrl-C stopping an answer without leaving, Ctrl-D leaving."""

import json
import subprocess
import sys

import pexpect

from conftest import ROOT, agent_env

PROMPT = "›"


def spawn(home, cfg):
    env = dict(agent_env(home), PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    child = pexpect.spawn(sys.executable, [str(ROOT / "agent.py"), "--config", str(cfg)], env=env,
                          encoding="utf-8", timeout=60, dimensions=(40, 200))
    child.expect_exact(PROMPT)
    return child


def history(home):
    out = subprocess.run([sys.executable, str(ROOT / "agent.py"), "history", "--json"], capture_output=True,
                         text=True, env=agent_env(home), timeout=60)
    return json.loads(out.stdout)


def test_repl_session(tmp_path, make_config):
    home = tmp_path / "home"
    cfg = make_config({"llm": {"backend": "embedded", "max_tokens": 48}, "agent": {"max_tool_rounds": 0}})
    child = spawn(home, cfg)
    assert "embedded: SmolLM2-135M-Instruct Q4_1" in child.before and "turn 0" in child.before
    child.sendline("Hello! Who are you?")
    child.expect(r"embedded · first token [\d.]+ s")
    child.expect_exact(PROMPT)
    child.sendline("/status")
    child.expect_exact(str(home))
    child.expect_exact(PROMPT)
    child.sendline("こんにちは、日本語は分かりますか？")
    child.expect("first token")
    child.expect_exact(PROMPT)
    child.sendline("/history 1")
    child.expect(r"#2 \S*you: \S*こんにちは、日本語は分かりますか？")
    child.expect_exact(PROMPT)
    child.sendline("/nope")
    child.expect_exact("unknown command /nope")
    child.expect_exact(PROMPT)
    child.sendeof()
    child.expect("bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    rows = history(home)
    assert [r["content"] for r in rows if r["role"] == "user"] == ["Hello! Who are you?", "こんにちは、日本語は分かりますか？"]
    assert all(r["content"].strip() for r in rows if r["role"] == "assistant")

    again = spawn(home, cfg)  # a new launch continues the same session
    assert "turn 2" in again.before
    again.sendline("/quit")
    again.expect(pexpect.EOF)


def test_ctrl_c_stops_the_answer_and_keeps_it(tmp_path, make_config):
    home = tmp_path / "home"
    cfg = make_config({"llm": {"backend": "embedded", "max_tokens": 2000, "temperature": 0.9},
                       "agent": {"max_tool_rounds": 0}})
    child = spawn(home, cfg)
    child.sendline("Write a very long story about a dragon who learns to cook, with many chapters.")
    child.expect_exact("\x1b[?2004l")  # prompt_toolkit has handed the terminal back: the turn runs
    child.expect(r"\w+ \w+ \w+ ")  # the first words of the answer have streamed
    child.sendintr()
    child.expect_exact("[stopped by the user]")
    child.expect_exact(PROMPT)  # still in the REPL
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    answer = history(home)[-1]
    assert answer["role"] == "assistant" and answer["meta"]["interrupted"] == "stopped by the user"
    assert len(answer["content"].split()) >= 3 and answer["meta"]["tokens"] < 2000


def test_a_command_waits_for_the_users_yes(tmp_path, make_config):
    """The real model picks run_command; the REPL shows the command and runs it only after "y"."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    (work / "marker.txt").write_text("x")
    cfg = make_config({"llm": {"backend": "embedded", "max_tokens": 48, "temperature": 0},
                       "reasoning": {"mode": "off"}})
    env = dict(agent_env(home), PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    child = pexpect.spawn(sys.executable, [str(ROOT / "agent.py"), "--config", str(cfg)], env=env, cwd=str(work),
                          encoding="utf-8", timeout=60, dimensions=(40, 200))
    child.expect_exact(PROMPT)
    child.sendline("Run the command `ls -la`.")
    child.expect(r"run_command\S* wants to run: \S*ls -la")
    child.expect_exact("allow? [y]es / [n]o / [a]lways")
    child.sendline("y")
    child.expect_exact("marker.txt")  # the command's output, shown as the tool result
    child.expect("first token")
    child.expect_exact(PROMPT)
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    tool = [r for r in history(home) if r["role"] == "tool"][0]
    assert tool["name"] == "run_command" and "exit code 0" in tool["content"] and "marker.txt" in tool["content"]


def test_the_prompt_comes_back_with_the_answer_and_the_upkeep_follows(tmp_path, make_config):
    """The upkeep after an answer (here: keeping a memory, which first loads the embedder, seconds)
    runs while the user types; its line appears above the prompt, and leaving waits for it."""
    home = tmp_path / "home"
    cfg = make_config({"llm": {"backend": "embedded", "max_tokens": 16}, "agent": {"max_tool_rounds": 0}})
    child = spawn(home, cfg)
    child.sendline("Please remember that my bicycle is blue.")
    child.expect("first token")
    child.expect_exact(PROMPT)  # back at the prompt...
    assert "remembered" not in child.before
    child.expect("remembered: ")  # ...and the memory is kept meanwhile
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    out = subprocess.run([sys.executable, str(ROOT / "agent.py"), "memory", "list", "--json"], capture_output=True,
                         text=True, env=agent_env(home), timeout=120)
    assert "bicycle is blue" in out.stdout, out.stderr


def test_several_lines_are_one_message_and_tab_completes_commands(tmp_path, make_config):
    """\"\"\" ... \"\"\" as in Ollama (Japanese included), a bracketed paste of several lines, Tab, /bye."""
    home = tmp_path / "home"
    cfg = make_config({"llm": {"backend": "embedded", "max_tokens": 16}, "agent": {"max_tool_rounds": 0},
                       "reasoning": {"mode": "off"}})
    child = spawn(home, cfg)
    child.sendline('"""最初の行')
    child.expect_exact("…")  # the continuation prompt
    child.sendline("二行目")
    child.sendline('三行目"""')
    child.expect("first token")
    child.expect_exact(PROMPT)
    child.send("\x1b[200~pasted one\npasted two\x1b[201~")  # a terminal's bracketed paste
    child.send("\r")
    child.expect("first token")
    child.expect_exact(PROMPT)
    child.send("/hist\t")  # Tab completes the command
    child.send(" 1\r")
    child.expect(r"#2 \S*you: \S*pasted one")
    child.expect_exact(PROMPT)
    child.sendline("/bye")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    users = [r["content"] for r in history(home) if r["role"] == "user"]
    assert users == ["最初の行\n二行目\n三行目", "pasted one\npasted two"]
