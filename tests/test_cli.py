"""The command line end to end with the real embedded model, real SQLite, in subprocesses:
-m, history, status, piped stdin, same session from any directory, clear errors."""

import json
import sqlite3
import subprocess
import sys

from conftest import ROOT, agent_env

AGENT = str(ROOT / "agent.py")


def agent(*args, home, cwd=None, stdin=None, timeout=120):
    return subprocess.run([sys.executable, AGENT, *args], capture_output=True, text=True, input=stdin,
                          cwd=cwd, env=agent_env(home), timeout=timeout, encoding="utf-8")


def fast_config(make_config, **agent_settings):
    return str(make_config({"llm": {"backend": "embedded", "max_tokens": 48},
                            "agent": {"max_tool_rounds": 0, **agent_settings}}))


def test_one_shot_turns_continue_one_session_from_any_directory(tmp_path, make_config):
    home, cfg = tmp_path / "home", fast_config(make_config)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first = agent("-m", "What is the capital of France?", "--config", cfg, home=home, cwd=tmp_path / "a")
    assert first.returncode == 0, first.stderr
    assert "embedded · first token" in first.stdout
    second = agent("-m", "And of Italy?", "--config", cfg, home=home, cwd=tmp_path / "b")
    assert second.returncode == 0, second.stderr
    rows = json.loads(agent("history", "--json", home=home).stdout)
    assert [(r["turn"], r["role"]) for r in rows] == [(1, "user"), (1, "assistant"), (2, "user"), (2, "assistant")]
    assert rows[2]["content"] == "And of Italy?" and rows[3]["content"].strip()
    assert rows[3]["content"].strip() in second.stdout  # what was streamed is what was kept
    assert set(rows[3]) >= {"reasoning", "content", "turn", "role", "tool_calls", "meta"}
    assert rows[3]["meta"]["backend"] == "embedded" and rows[3]["meta"]["tokens"] > 0
    status = json.loads(agent("status", "--json", "--config", cfg, home=home).stdout)
    assert status["turns"] == 2 and status["backend"] == "embedded" and status["data"] == str(home)
    assert status["model"].startswith("SmolLM2") and status["last_answer"]["ttft_s"] > 0
    last = agent("history", "--last", "1", home=home)
    assert "And of Italy?" in last.stdout and "capital of France" not in last.stdout


def test_home_flag_beats_agent_home(tmp_path, make_config):
    cfg = fast_config(make_config)
    out = agent("-m", "hi", "--config", cfg, "--home", str(tmp_path / "other"), home=tmp_path / "env")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "other" / "agent.db").exists() and not (tmp_path / "env").exists()


def test_piped_stdin_is_read_line_by_line(tmp_path, make_config):
    home = tmp_path / "home"
    out = agent("--config", fast_config(make_config), home=home,
                stdin="Hello!\n\n/history 1\n日本語で話せますか？\n/quit\nnever sent\n")
    assert out.returncode == 0, out.stderr
    assert "#1 you: Hello!" in out.stdout  # /history ran between the turns
    users = [r["content"] for r in json.loads(agent("history", "--json", home=home).stdout) if r["role"] == "user"]
    assert users == ["Hello!", "日本語で話せますか？"]


def test_tool_call_with_the_real_model(tmp_path, make_config):
    home = tmp_path / "home"
    cfg = str(make_config({"llm": {"backend": "embedded", "max_tokens": 48}}))
    out = agent("-m", "What time is it now?", "--config", cfg, home=home)
    assert out.returncode == 0, out.stderr
    rows = json.loads(agent("history", "--json", home=home).stdout)
    assert [r["role"] for r in rows] == ["user", "assistant", "tool", "assistant"]
    assert rows[1]["tool_calls"][0]["name"] == "current_time" and "→ current_time({})" in out.stdout


def test_ollama_only_fails_clearly_and_keeps_the_message(tmp_path, make_config):
    home = tmp_path / "home"
    cfg = str(make_config({"llm": {"ollama": {"base_url": "http://127.0.0.1:9", "connect_timeout_s": 1}}}))
    out = agent("-m", "keep me", "--backend", "ollama", "--config", cfg, home=home)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and "Ollama is not reachable at http://127.0.0.1:9" in out.stderr
    assert "does not fall back" in out.stderr
    rows = json.loads(agent("history", "--json", home=home).stdout)
    assert [r["content"] for r in rows] == ["keep me"]


def test_auto_falls_back_with_one_notice(tmp_path, make_config):
    cfg = str(make_config({"llm": {"max_tokens": 32, "ollama": {"base_url": "http://127.0.0.1:9"}},
                           "agent": {"max_tool_rounds": 0}}))
    out = agent("-m", "hi", "--config", cfg, home=tmp_path / "home")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("Ollama is not reachable") == 1 and "Using the embedded model" in out.stdout


def test_corrupt_database_is_named_and_left_alone(tmp_path, make_config):
    home = tmp_path / "home"
    home.mkdir()
    (home / "agent.db").write_bytes(b"this is not sqlite" * 100)
    out = agent("-m", "hi", "--config", fast_config(make_config), home=home)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert str(home / "agent.db") in out.stderr and "corrupt" in out.stderr
    assert (home / "agent.db").read_bytes() == b"this is not sqlite" * 100


def test_help_is_true_and_fast_to_import():
    out = subprocess.run([sys.executable, "-X", "importtime", AGENT, "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for word in ("history", "logs", "metrics", "status", "--home", "--config", "--backend", "-m TEXT", "--version"):
        assert word in out.stdout
    assert "langgraph" not in out.stderr and "llama_cpp" not in out.stderr  # heavy imports stay lazy


def test_checkpoint_lives_in_the_data_folder(tmp_path, make_config):
    home = tmp_path / "home"
    agent("-m", "hi", "--config", fast_config(make_config), home=home)
    with sqlite3.connect(home / "agent.db") as db:
        threads = {r[0] for r in db.execute("SELECT DISTINCT thread_id FROM checkpoints")}
    assert threads == {"main"}


def test_reading_a_missing_data_folder_creates_nothing(tmp_path):
    home = tmp_path / "typo"
    out = agent("history", home=home)
    assert out.returncode == 1 and "no data folder here yet" in out.stderr and "Traceback" not in out.stderr
    assert not home.exists()


def test_bad_arguments_are_one_line(tmp_path):
    for args in (["history", "--last", "-1"], ["history", "--last", "99999999999999999999"], ["-m", "   "],
                 ["logs", "--last", "abc"]):
        out = agent(*args, home=tmp_path / "home")
        assert out.returncode == 2 and "Traceback" not in out.stderr, args


def test_version_comes_from_the_package(tmp_path):
    from graph import __version__

    out = agent("--version", home=tmp_path / "home")
    assert out.returncode == 0 and out.stdout.strip() == f"agent.py {__version__}"


def test_piped_stdin_is_attached_to_the_message(tmp_path, make_config):
    home = tmp_path / "home"
    diff = "--- a/x.py\n+++ b/x.py\n-print('hi')\n+print('こんにちは')\n```\n"  # a fence inside stays inside
    out = agent("-m", "review this", "--config", fast_config(make_config), home=home, stdin=diff)
    assert out.returncode == 0, out.stderr
    [user] = [r["content"] for r in json.loads(agent("history", "--json", home=home).stdout) if r["role"] == "user"]
    assert user == "review this\n\n````\n" + diff.rstrip("\n") + "\n````"
    plain = agent("-m", "no attachment", "--config", fast_config(make_config), home=home, stdin="")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(agent("history", "--json", "--last", "1", home=home).stdout)[0]["content"] == "no attachment"


def test_logs_is_the_conversation_and_metrics_the_turn_log(tmp_path, make_config):
    home = tmp_path / "home"
    assert agent("-m", "Hello!", "--config", fast_config(make_config), home=home).returncode == 0
    logs, history = agent("logs", "--json", home=home), agent("history", "--json", home=home)
    assert logs.returncode == 0 and json.loads(logs.stdout) == json.loads(history.stdout)
    assert json.loads(logs.stdout)[0]["content"] == "Hello!"
    assert "you: Hello!" in agent("logs", "--search", "Hello", home=home).stdout
    [record] = [json.loads(line) for line in agent("metrics", "--json", home=home).stdout.splitlines()]
    assert record["backend"] == "embedded" and record["tokens"] > 0
    old = agent("logs", "--follow", home=home)
    assert old.returncode == 2 and old.stderr.strip() == (
        "error: `logs` is the conversation now; the turn metrics are `agent.py metrics --follow`")


def test_piped_lines_between_triple_quotes_are_one_message(tmp_path, make_config):
    home = tmp_path / "home"
    out = agent("--config", fast_config(make_config), home=home,
                stdin='"""一行目\n二行目\n三行目"""\nsingle line\n/bye\nnever sent\n')
    assert out.returncode == 0, out.stderr
    users = [r["content"] for r in json.loads(agent("history", "--json", home=home).stdout) if r["role"] == "user"]
    assert users == ["一行目\n二行目\n三行目", "single line"]
