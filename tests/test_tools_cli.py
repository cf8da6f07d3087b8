"""`agent.py tools` end to end in subprocesses: listing with sources, running one tool under
the same approval rules (asked on a terminal, refused when piped), bad arguments, `undo`."""

import json
import subprocess
import sys

import pexpect

from conftest import ROOT, agent_env

AGENT = str(ROOT / "agent.py")


def agent(*args, home, cwd, timeout=120):
    return subprocess.run([sys.executable, AGENT, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          cwd=cwd, env=agent_env(home), timeout=timeout, encoding="utf-8")


def setup(tmp_path, make_config, shell=None):
    work = tmp_path / "work"
    work.mkdir()
    cfg = str(make_config({"tools": {"shell": shell or {}, "browser": {"enabled": False}}}))
    return work, tmp_path / "home", cfg


def test_listing_names_every_builtin_with_its_source(tmp_path, make_config):
    work, home, cfg = setup(tmp_path, make_config)
    out = agent("tools", "--json", "--config", cfg, home=home, cwd=work)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    for name in ("web_search", "fetch_url", "run_command", "read_file", "write_file", "edit_file", "list_dir",
                 "create_tool", "delegate", "current_time"):
        assert rows[name]["source"] == "builtin" and rows[name]["description"], name
    table = agent("tools", "--config", cfg, home=home, cwd=work)
    assert "run_command" in table.stdout and "builtin" in table.stdout


def test_run_one_tool_and_undo_its_edit(tmp_path, make_config):
    work, home, cfg = setup(tmp_path, make_config)
    (work / "notes.txt").write_text("こんにちは\n", encoding="utf-8")
    read = agent("tools", "run", "read_file", '{"path": "notes.txt"}', "--config", cfg, home=home, cwd=work)
    assert read.returncode == 0 and "こんにちは" in read.stdout
    edit = agent("tools", "run", "edit_file", '{"path": "notes.txt", "old_text": "こんにちは", "new_text": "さようなら"}',
                 "--config", cfg, home=home, cwd=work)
    assert edit.returncode == 0, edit.stderr
    assert (work / "notes.txt").read_text(encoding="utf-8") == "さようなら\n"
    undo = agent("undo", "--config", cfg, home=home, cwd=work)
    assert undo.returncode == 0 and "notes.txt" in undo.stdout
    assert (work / "notes.txt").read_text(encoding="utf-8") == "こんにちは\n"


def test_refusals_and_errors_exit_non_zero_with_one_line(tmp_path, make_config):
    work, home, cfg = setup(tmp_path, make_config)
    cases = [
        (["run_command", '{"command": "echo hi"}'], 1, "nobody can be asked"),  # piped: ask means refuse
        (["run_command", '{"command": "rm -rf /"}'], 1, "deny pattern"),
        (["read_file", '{"path": "../../etc/passwd"}'], 1, "outside"),
        (["no_such_tool"], 1, "no tool named"),
        (["read_file", "{not json"], 2, "not valid JSON"),
        (["read_file", "[1]"], 2, "JSON object"),
        (["read_file", '{"paht": "x"}'], 1, "bad arguments"),
    ]
    for args, code, text in cases:
        out = agent("tools", "run", *args, "--config", cfg, home=home, cwd=work)
        assert out.returncode == code, (args, out.stdout, out.stderr)
        assert text in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)


def test_auto_policy_runs_commands_without_asking(tmp_path, make_config):
    work, home, cfg = setup(tmp_path, make_config, {"policy": "auto"})
    out = agent("tools", "run", "run_command", '{"command": "echo 日本語"}', "--config", cfg, home=home, cwd=work)
    assert out.returncode == 0 and "exit code 0" in out.stdout and "日本語" in out.stdout


def test_on_a_terminal_the_user_is_asked_and_always_is_kept(tmp_path, make_config):
    work, home, cfg = setup(tmp_path, make_config)

    def run(answer):
        child = pexpect.spawn(sys.executable, [AGENT, "tools", "run", "run_command", '{"command": "echo asked"}',
                                               "--config", cfg], cwd=str(work), env=agent_env(home),
                              encoding="utf-8", timeout=60, dimensions=(40, 200))
        if answer:
            child.expect_exact("allow? [y]es / [n]o / [a]lways")
            assert "echo asked" in child.before
            child.sendline(answer)
        child.expect(pexpect.EOF)
        child.close()
        return child.exitstatus, child.before

    code, out = run("n")
    assert code == 1 and "declined" in out
    code, out = run("a")
    assert code == 0 and "asked" in out
    code, out = run(None)  # "always" was remembered: no question this time
    assert code == 0 and "exit code 0" in out


def test_mcp_and_self_made_tools_are_listed_run_and_removed(tmp_path, make_config):
    """`tools` names each tool's source; `tools run` calls an MCP server's tool directly (the
    debugging use) and a self-made tool after it was created; `tools remove` deletes it."""
    work = tmp_path / "work"
    work.mkdir()
    server = {"command": sys.executable, "args": [str(ROOT / "tests" / "mcp_servers.py"), "stdio"]}
    cfg = str(make_config({"mcpServers": {"calc": server}}))
    home = tmp_path / "home"
    code = ('def shout(text: str) -> str:\n    """Return the text in capitals with an exclamation mark."""\n'
            '    return text.upper() + "!"\n')
    made = agent("tools", "run", "create_tool", json.dumps({"name": "shout", "code": code, "test_args": {"text": "hi"}}),
                 "--config", cfg, home=home, cwd=work)
    assert made.returncode == 0, made.stderr
    rows = {r["name"]: r["source"] for r in json.loads(agent("tools", "--json", "--config", cfg, home=home,
                                                             cwd=work).stdout)}
    assert rows["add"] == "mcp:calc" and rows["shout"] == "self-made" and rows["read_file"] == "builtin"
    table = agent("tools", "--config", cfg, home=home, cwd=work).stdout
    assert "MCP server calc (stdio): running" in table
    added = agent("tools", "run", "add", '{"a": 2, "b": 40}', "--config", cfg, home=home, cwd=work)
    assert added.returncode == 0 and added.stdout.strip() == "42"
    shouted = agent("tools", "run", "shout", '{"text": "こんにちは"}', "--config", cfg, home=home, cwd=work)
    assert shouted.returncode == 0 and "こんにちは!" in shouted.stdout
    assert agent("tools", "remove", "shout", "--config", cfg, home=home, cwd=work).returncode == 0
    gone = agent("tools", "run", "shout", '{"text": "x"}', "--config", cfg, home=home, cwd=work)
    assert gone.returncode == 1 and "no tool named 'shout'" in gone.stderr
    missing = agent("tools", "remove", "shout", "--config", cfg, home=home, cwd=work)
    assert missing.returncode == 1 and "shout" in missing.stderr and "Traceback" not in missing.stderr
