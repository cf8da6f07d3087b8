"""run_command running real commands: exit codes, merged output, cwd, timeout, output cap."""

import _thread
import os
import sys
import threading
import time

import psutil
import pytest
from tooling import call

from graph.context import Context
from graph.tools import shell
from graph.tools.shell import run_command

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the commands below are POSIX shell")
PY = sys.executable


@pytest.fixture
def ctx(tmp_path, make_config):
    (tmp_path / "work" / "sub").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    path = make_config({"tools": {"shell": {"timeout_s": 5, "max_output_chars": 1000}}})
    return Context(home=str(tmp_path / "home"), config=str(path), cwd=str(tmp_path / "work"))


def run(ctx, command, **args):
    return call(run_command, ctx, command=command, **args)


def test_metadata_says_it_acts_on_the_shell():
    assert shell.TOOLS == [run_command]
    assert run_command.metadata["acts"] == "shell" and run_command.metadata["untrusted"] is True
    assert set(run_command.tool_call_schema.model_fields) == {"command", "cwd", "timeout_s"}


def test_exit_code_is_a_result_not_a_failure(ctx):
    assert run(ctx, "echo hello").content == "exit code 0\nhello\n"
    msg = run(ctx, "echo nope; exit 3")
    assert msg.status != "error"
    assert msg.content == "exit code 3\nnope\n"


def test_stderr_is_merged_in_order(ctx):
    msg = run(ctx, "echo one; echo two >&2; echo three")
    assert msg.content == "exit code 0\none\ntwo\nthree\n"


def test_no_input_and_empty_output_say_so(ctx):
    assert run(ctx, "cat").content == "exit code 0\n(no output)"  # stdin is empty, not the terminal
    assert run(ctx, "true").content == "exit code 0\n(no output)"


def test_cwd_defaults_to_the_workspace_and_can_be_chosen(ctx, tmp_path):
    assert run(ctx, "pwd").content == f"exit code 0\n{tmp_path / 'work'}\n"
    assert run(ctx, "pwd", cwd="sub").content == f"exit code 0\n{tmp_path / 'work' / 'sub'}\n"
    assert run(ctx, "pwd", cwd=str(tmp_path / "work" / "sub")).content.endswith("/work/sub\n")


@pytest.mark.parametrize("cwd", ["..", "../other", "/", "sub/../../other"])
def test_cwd_outside_the_roots_is_refused(ctx, tmp_path, cwd):
    msg = run(ctx, "pwd", cwd=cwd)
    assert msg.status == "error"
    assert "is outside the workspace; use one of" in msg.content and str(tmp_path / "work") in msg.content


def test_other_roots_are_allowed(tmp_path, make_config):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    path = make_config({"tools": {"files": {"roots": ["a", str(tmp_path / "b")]}}})
    ctx = Context(home=str(tmp_path / "home"), config=str(path), cwd=str(tmp_path))
    assert run(ctx, "pwd").content == f"exit code 0\n{tmp_path / 'a'}\n"
    assert run(ctx, "pwd", cwd=str(tmp_path / "b")).content == f"exit code 0\n{tmp_path / 'b'}\n"
    assert "missing is not an existing folder" in run(ctx, "pwd", cwd="missing").content


def dead(pidfile) -> bool:
    pid = int(pidfile.read_text())
    time.sleep(0.1)
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_timeout_kills_the_whole_process_group(ctx, tmp_path):
    pidfile = tmp_path / "work" / "child.pid"
    start = time.monotonic()
    msg = run(ctx, f"echo started; sleep 100 & echo $! > {pidfile}; sleep 100", timeout_s=1)
    assert time.monotonic() - start < 3
    assert msg.status == "error"
    assert msg.content.startswith("`echo started; sleep 100 &")
    assert "timed out after 1 s; the command was killed. Output so far:\nstarted\n" in msg.content
    assert dead(pidfile)


def test_ctrl_c_kills_the_command(ctx, tmp_path):
    pidfile = tmp_path / "work" / "child.pid"
    threading.Timer(0.5, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        run(ctx, f"sleep 100 & echo $! > {pidfile}; wait", timeout_s=10)
    assert dead(pidfile)


def test_default_timeout_comes_from_the_config(tmp_path, make_config):
    path = make_config({"tools": {"shell": {"timeout_s": 0.5}}})
    ctx = Context(home=str(tmp_path / "home"), config=str(path), cwd=str(tmp_path))
    assert "timed out after 0.5 s" in run(ctx, "sleep 10").content


def test_background_process_holding_the_output_is_stopped(ctx):
    start = time.monotonic()
    msg = run(ctx, "echo started; sleep 100 &")
    assert time.monotonic() - start < 3
    assert msg.content.startswith("exit code 0\nstarted\n")
    assert "background processes still writing to the output were stopped" in msg.content


def test_output_cap_keeps_head_and_tail(ctx):
    msg = run(ctx, "for i in $(seq 1 2000); do echo line$i; done")
    body = msg.content.removeprefix("exit code 0\n")
    assert body.startswith("line1\nline2\n")
    assert body.endswith("line1999\nline2000\n")
    full = sum(len(f"line{i}\n") for i in range(1, 2001))
    assert f"\n[… {full - 1000} characters cut …]\n" in body
    assert len(body) < 1000 + 50


def test_large_output_does_not_deadlock(ctx):
    start = time.monotonic()
    msg = run(ctx, f"{PY} -c \"import sys; sys.stdout.write('x' * 20_000_000); sys.stderr.write('done')\"")
    assert time.monotonic() - start < 5
    assert msg.content.startswith("exit code 0\nxxx")
    assert msg.content.endswith("xxxdone")
    assert "[… 19999004 characters cut …]" in msg.content


def test_japanese_output_and_bad_bytes(ctx):
    assert run(ctx, "echo 'こんにちは、世界'").content == "exit code 0\nこんにちは、世界\n"
    assert run(ctx, "printf 'ok\\377\\n'").content == "exit code 0\nok\ufffd\n"


def test_japanese_is_not_split_at_chunk_boundaries(ctx):
    msg = run(ctx, f"{PY} -c \"import sys; sys.stdout.buffer.write('あ'.encode() * 30000)\"")
    assert "\ufffd" not in msg.content
    assert msg.content.startswith("exit code 0\nあああ")


def test_killed_by_a_signal(ctx):
    assert run(ctx, "kill -TERM $$").content == "killed by signal 15\n(no output)"


def test_ctrl_c_in_the_repl_stops_the_command_and_keeps_its_output(tmp_path, make_config):
    ctx = Context(home=str(tmp_path / "home"), config=str(make_config({})), cwd=str(tmp_path))
    threading.Timer(1.0, ctx.stop.set).start()
    result = call(run_command, ctx, command="echo started; sleep 30")
    assert result.status == "error" and "stopped by the user" in result.content and "started" in result.content
