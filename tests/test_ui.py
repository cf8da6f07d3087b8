"""The web UI in a real browser: `agent.py ui` started as the user starts it (a subprocess on a
free loopback port, a temporary data folder), driven through the project's own Playwright MCP
client (graph/tools/mcp.py: Playwright MCP with Debian's Chromium, as tests/test_browser.py).

With the real embedded model: a message typed in the page streams its answer live, a thumbs-up
under it is recorded as the turn's reward (the learning view's reward numbers change), the
learning view shows the prompt version serving, the monitoring view the machine and the turn's
speed. With a scripted model (for determinism, through a small harness that makes it the UI
process's backend): a command waits for approval, the Yes button runs it and its output is
shown; an answer holding `<img src=x onerror=...>` and `<script>` is shown as text and never
runs; Japanese renders, with the reasoning folded into "thought for X s"; an evolution run in
the archive shows its lineage and the Promote button makes its best genome serve; the rollback
button undoes it; stars rate an answer; a second `ui` on the same port says so in one line;
Ctrl-C stops the server cleanly. Screenshots go to the test's tmp folder (their paths are
printed). Last, the chat page alone (Streamlit's AppTest): history paging, no raw HTML.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, agent_env
from fakes import ScriptedChat, install
from tooling import call

from graph.actions import prompt
from graph.context import Context
from graph.evolution import archive
from graph.evolution.archive import Genome
from graph.learning import reward, selfprompt
from graph.session import Session
from graph.store import Store
from graph.tools import mcp

START_TIMEOUT_S = 90
TURN_TIMEOUT_S = 120

HARNESS = '''
import json, sys
sys.path[:0] = [{root!r}, {tests!r}]
from fakes import ScriptedChat
from graph.models import llm

model = ScriptedChat(replies=json.loads(open(sys.argv[1], encoding="utf-8").read()))
llm.resolve = lambda settings, lora="": llm.Backend("fake", "scripted", model, 4096)
import agent
sys.exit(agent.main(sys.argv[2:]))
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class UI:
    """A running `agent.py ui` (stopped with Ctrl-C, as a user stops it)."""

    def __init__(self, tmp_path: Path, config: Path, harness: list | None = None, *flags: str):
        self.home, self.port, self.log = tmp_path / "home", free_port(), tmp_path / "ui.log"
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        argv = [str(ROOT / "agent.py")]
        if harness is not None:
            (tmp_path / "replies.json").write_text(json.dumps(harness, ensure_ascii=False), encoding="utf-8")
            (tmp_path / "harness.py").write_text(HARNESS.format(root=str(ROOT), tests=str(ROOT / "tests")))
            argv = [str(tmp_path / "harness.py"), str(tmp_path / "replies.json")]
        self.out = self.log.open("w", encoding="utf-8")
        self.proc = subprocess.Popen([sys.executable, *argv, "ui", "--port", str(self.port), "--config", str(config),
                                      *flags],
                                     cwd=work, env=agent_env(self.home), stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"agent.py ui exited with {self.proc.returncode}:\n{self.text()}")
            try:
                if httpx.get(self.url + "_stcore/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        pytest.fail(f"agent.py ui did not answer within {START_TIMEOUT_S} s:\n{self.text()}")

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()
        return self.proc.returncode


def labelled(role: str, label: str) -> str:
    """A Streamlit button or link in a snapshot, whose label is a paragraph inside it (after an
    icon or its URL): its ref is group 1."""
    return (rf'{role} [^\n]*\[ref=(\w+)\][^\n]*\n(?:\s*- (?:generic|/url)[^\n]*\n){{0,4}}'
            rf'\s*- paragraph [^\n]*: "?{re.escape(label)}"?\n')


class Browser:
    """Chromium through the project's Playwright MCP client."""

    def __init__(self, tmp_path: Path, make_config):
        config = make_config({"tools": {"browser": {"enabled": True, "tools": ["*"]}}}, name="driver.yaml")
        self.ctx = Context(home=str(tmp_path / "driver"), config=str(config))
        self.tools = {t.name: t for t in mcp.tools(self.ctx, lambda line: pytest.fail(line))}
        self.shots = Path(self.ctx.home) / "browser" / "output"  # where Playwright MCP may write

    def __call__(self, name: str, **args) -> str:
        result = call(self.tools[name], self.ctx, **args)
        assert result.status != "error", f"{name}: {result.text}"
        return result.text

    def snapshot(self) -> str:
        return self("browser_snapshot")

    def wait_for(self, pattern: str, timeout: float = TURN_TIMEOUT_S, seen: list | None = None) -> str:
        """The page's snapshot once `pattern` (a regular expression) is in it; every snapshot
        taken meanwhile is appended to `seen`."""
        deadline = time.monotonic() + timeout
        while True:
            page = self.snapshot()
            if seen is not None:
                seen.append(page)
            if re.search(pattern, page):
                return page
            if "Traceback:" in page:  # the page failed: Streamlit shows the exception
                pytest.fail(f"the page shows an error:\n{page[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"not on the page after {timeout} s: {pattern}\n{page[-3000:]}")
            time.sleep(0.2)

    def ref(self, page: str, role: str, name: str, last: bool = False) -> str:
        """The first (or last) element of that role and name on the page."""
        found = re.findall(rf'{role} "[^"]*{re.escape(name)}"[^\n]*\[ref=(\w+)\]', page) or \
            re.findall(labelled(role, name), page)
        assert found, f'no {role} "{name}" on the page:\n{page[-3000:]}'
        return found[-1 if last else 0]

    def send(self, text: str) -> None:
        page = self.wait_for(r'textbox "Message the agent"(?! \[disabled\])[^\n]*\[ref=')  # enabled
        self("browser_type", element="message box", target=self.ref(page, "textbox", "Message the agent"),
             text=text, submit=True)

    def open(self, title: str, pattern: str) -> str:
        """Go to a page of the UI by its link in the sidebar; its snapshot once `pattern` is on it."""
        self.click(self.wait_for(labelled("link", title)), "link", title)
        return self.wait_for(pattern)

    def click(self, page: str, role: str, name: str, last: bool = False) -> None:
        self("browser_click", element=f"{role} {name}", target=self.ref(page, role, name, last))

    def screenshot(self, name: str) -> Path:
        path = self.shots / name
        self("browser_take_screenshot", filename=str(path), fullPage=True)
        assert path.stat().st_size > 0
        print(f"screenshot: {path}")
        return path


@pytest.fixture
def ui_config(make_config):
    return make_config({"memory": {"enabled": False}})


def test_real_model_streams_an_answer_and_a_rating_is_recorded(tmp_path, make_config, ui_config):
    ui = UI(tmp_path, ui_config)
    try:
        browser = Browser(tmp_path, make_config)
        browser("browser_navigate", url=ui.url)
        browser.send("What is the capital of France?")
        seen: list[str] = []
        page = browser.wait_for(r"turn 1 · reward", seen=seen)
        stop = labelled("button", "Stop")
        assert any(re.search(stop, each) for each in seen), "the turn was never shown while it was written"
        rows = Store(ui.home).history()
        assert [r["role"] for r in rows] == ["user", "assistant"]
        assert rows[0]["content"] == "What is the capital of France?"
        answer = rows[1]["content"]
        assert answer.strip()
        for word in re.findall(r"[A-Za-z]{4,}", answer)[:3]:  # the answer is on the page
            assert word in page
        assert 'group "Chat message from user"' in page and 'group "Chat message from assistant"' in page
        browser.screenshot("ui-answer.png")

        page = browser.open("Learning", r"latest: turn 1 reward \+0\.00")
        assert re.search(r"version 1 · serving · by \w+", page)  # the prompt version serving, on its timeline
        browser.open("Chat", r"turn 1 · reward")

        browser.click(browser.wait_for(r'radio "Thumbs up"'), "radio", "Thumbs up")
        browser.wait_for(r"turn 1 · reward \+1\.00")
        assert reward.get(Store(ui.home), 1).components == {"good": 1.0}
        browser.screenshot("ui-rated.png")
        browser.open("Learning", r"latest: turn 1 reward \+1\.00")  # the reward chart's point moved
        browser.screenshot("ui-learning.png")
        page = browser.open("Monitoring", r"last turn 1: tokens per second [\d.]+ · first token \(s\) [\d.]+")
        browser.wait_for(r"CPU[\s\S]*\d+ %")  # a sample of the machine
        browser.screenshot("ui-monitoring.png")
    finally:
        code = ui.stop()
    assert code == 0, ui.text()
    assert "web UI stopped" in ui.text() and "Traceback" not in ui.text()


def seed_evolution(ctx: Context) -> int:
    """A finished evolution run in the archive: a seed genome and its better child; returns the child's id."""
    store, base = ctx.store, ctx.settings.agent.system_prompt
    run = archive.start(store, "test", {})
    rules = ["Keep every answer under fifty words.", "Give the answer first, then explain it briefly."]
    seed = archive.add(store, Genome(selfprompt.compose(base, rules[:1]), sampling={"temperature": 0.7}, run=run))
    archive.scored(store, seed, {"a": 0.4, "b": 0.5}, [])
    child = archive.add(store, Genome(selfprompt.compose(base, rules),
                                      sampling={"temperature": 0.5}, parents=[seed.id], operator="mutate",
                                      generation=1, run=run))
    archive.scored(store, child, {"a": 0.9, "b": 0.8}, [])
    archive.finish(store, run, "done", {"decision": "kept the prompt in use"})
    return child.id


def test_approval_escaping_and_japanese_with_a_scripted_model(tmp_path, make_config, ui_config):
    xss = ('Here is the page: <img src=x onerror="window.pwned=2;document.title=\'PWNED\'"> and '
           '<script>window.pwned=1</script> done.')
    replies = [{"tool": "run_command", "args": {"command": "echo UI-APPROVED-42"}},
               "The command printed UI-APPROVED-42.", xss, "<think>1. 日本の首都は東京。</think>東京は日本の首都です。"]
    ui = UI(tmp_path, ui_config, replies, "--think", "on")
    try:
        taken = subprocess.run([sys.executable, str(ROOT / "agent.py"), "ui", "--port", str(ui.port)],
                               capture_output=True, text=True, env=agent_env(tmp_path / "other"), timeout=60,
                               check=False)
        assert taken.returncode == 1 and taken.stderr.strip().count("\n") == 0, taken.stderr
        assert f"port {ui.port}" in taken.stderr and "taken" in taken.stderr

        browser = Browser(tmp_path, make_config)
        browser("browser_navigate", url=ui.url)
        browser.send("Please run the echo command.")
        asked = r"run_command wants to run this[\s\S]*echo UI-APPROVED-42[\s\S]*"
        page = browser.wait_for(asked + labelled("button", "Yes"))
        browser.screenshot("ui-approval.png")
        browser.click(page, "button", "Yes")
        page = browser.wait_for(r"turn 1 · reward")
        assert "UI-APPROVED-42" in page and "The command printed UI-APPROVED-42." in page
        tools = [r for r in Store(ui.home).history() if r["role"] == "tool"]
        assert len(tools) == 1 and "exit code 0" in tools[0]["content"] and "UI-APPROVED-42" in tools[0]["content"]
        browser.screenshot("ui-approved.png")

        browser.send("Show me some HTML.")
        page = browser.wait_for(r"turn 2 · reward")
        assert "onerror" in page and "window.pwned=1" in page  # shown as text
        state = json.loads(re.search(r"### Result\n(.*?)\n###", browser(
            "browser_evaluate", function="() => JSON.stringify([document.title, typeof window.pwned, "
                                         "document.querySelectorAll('img[onerror]').length])"),
            re.DOTALL).group(1).strip().strip('"').replace('\\"', '"'))
        assert state[0] != "PWNED" and state[1:] == ["undefined", 0], state  # neither the onerror nor the script ran
        browser.screenshot("ui-escaped.png")

        browser.send("日本の首都はどこですか？")
        page = browser.wait_for(r"turn 3 · reward")
        assert "日本の首都はどこですか？" in page and "東京は日本の首都です。" in page
        assert re.search(r"thought for [\d.]+ s", page)  # the reasoning, folded
        assert Store(ui.home).history()[-1]["reasoning"] == "1. 日本の首都は東京。"
        browser.screenshot("ui-japanese.png")

        winner = seed_evolution(Context(home=str(ui.home), config=str(ui_config)))
        page = browser.open("Evolution", rf"#{winner} gen 1")
        assert "kept the prompt in use" in page and "mutate" in page  # the run, and the lineage's operator
        browser.screenshot("ui-evolution.png")
        browser.click(page, "button", "Promote this genome")
        browser.wait_for(rf"#{winner} gen 1 · mutate of #\d+ · fitness 0\.85 · promoted")
        assert prompt.current(Context(home=str(ui.home), config=str(ui_config))).author == "evolution"

        page = browser.open("Learning", r"version 2 · serving · by evolution")
        browser.screenshot("ui-prompt-versions.png")
        browser.click(page, "button", "Roll back version 2")
        browser.wait_for(r"version 2 · rolled back · by evolution[\s\S]*version 1 · serving")
        assert prompt.current(Context(home=str(ui.home), config=str(ui_config))).id == 1

        page = browser.open("Chat", r"turn 3 · reward")
        browser.click(page, "radio", "4 out of 5 stars", last=True)  # the last answer's stars
        browser.wait_for(r"turn 3 · reward \+0\.50 \(rating \+0\.50\)")
        assert reward.get(Store(ui.home), 3).components == {"rating": 0.5}
    finally:
        code = ui.stop()
    assert code == 0, ui.text()
    assert "web UI stopped" in ui.text() and "Traceback" not in ui.text()


def test_history_is_paged_and_no_answer_is_raw_html(tmp_path, make_config, monkeypatch):
    """The chat page itself (Streamlit's AppTest, no browser): 20 turns at a time, older ones on
    request, and no Markdown element that lets HTML through."""
    from streamlit.testing.v1 import AppTest

    ctx = Context(home=str(tmp_path / "home"), config=str(make_config({"memory": {"enabled": False}})))
    install(ctx, ScriptedChat(replies=[f"answer {i} <b>in bold?</b>" for i in range(40)]))
    session = Session(ctx)
    for i in range(25):
        list(session.turn(f"question {i}"))
    monkeypatch.setattr(sys, "argv", ["app.py", "--home", ctx.home, "--config", ctx.config])
    app = AppTest.from_file(str(ROOT / "graph" / "web" / "ui" / "app.py"), default_timeout=60).run()
    try:
        assert not app.exception
        asked = [m.markdown[0].value for m in app.chat_message if m.name == "user"]
        assert asked == [f"question {i}" for i in range(5, 25)]
        next(b for b in app.button if b.label == "show earlier turns").click().run()
        asked = [m.markdown[0].value for m in app.chat_message if m.name == "user"]
        assert asked == [f"question {i}" for i in range(25)]
        assert not [b for b in app.button if b.label == "show earlier turns"]
        answers = [m.markdown[0].value for m in app.chat_message if m.name == "assistant"]
        kept = [r["content"] for r in session.store.history() if r["role"] == "assistant"]
        assert answers == kept and len(kept) == 25 and all(a.endswith("<b>in bold?</b>") for a in kept)
        assert not [m for m in app.markdown if m.proto.allow_html]  # Markdown escapes the <b>
    finally:
        import streamlit as st

        st.cache_resource.clear()  # the session the app opened


def test_an_unanswered_approval_is_a_no_and_a_second_answer_is_refused(tmp_path, make_config):
    """The web turn (live.py, no browser): a tab closed while a command waits does not hold the
    session; one approval takes one answer."""
    from graph.web.ui import live

    work = tmp_path / "work"
    work.mkdir()
    ctx = Context(home=str(tmp_path / "home"), cwd=str(work),
                  config=str(make_config({"memory": {"enabled": False}, "web": {"approval_timeout_s": 0.5}})))
    call_ = {"tool": "run_command", "args": {"command": "touch made"}}
    install(ctx, ScriptedChat(replies=[call_, "Not run."]))
    turn = live.Desk(Session(ctx)).send("make the file")
    turn.thread.join(timeout=60)
    assert turn.finished and not (work / "made").exists()
    assert any(kind == "notice" and "the command was not run" in data for kind, data, _ in turn.events)

    ctx = Context(home=ctx.home, cwd=str(work), config=str(make_config({"memory": {"enabled": False}}, "wait.yaml")))
    install(ctx, ScriptedChat(replies=[call_, "Run."]))  # the default wait: 600 s
    turn = live.Desk(Session(ctx)).send("make it now")
    deadline = time.monotonic() + 60
    while turn.question is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert turn.question["args"]["command"] == "touch made"
    assert turn.answer("yes") and not turn.answer("no")  # the second click finds nothing to answer
    turn.thread.join(timeout=60)
    assert (work / "made").exists() and [b.text for b in turn.blocks() if b.kind == "token"] == ["Run."]
