"""The built-in browser: a real Playwright MCP session (graph/tools/browser) driving Debian's
Chromium against a page served on 127.0.0.1 — navigate, snapshot, type, click — and one
agent turn through the real graph in which a scripted model reads a value off the page.
Needs `npm ci --prefix graph/tools/browser` and the `chromium` package (.ci/run does both).
"""

import functools
import http.server
import json
import re
import threading
import uuid
from pathlib import Path

import pytest

from fakes import ScriptedChat, install
from graph.context import Context
from graph.session import Session
from graph.tools import mcp
from tooling import call

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Order desk</title>
<link rel="icon" href="data:,"></head><body>
<h1>Order desk</h1>
<p>The code word is {code}.</p>
<label for="name">Your name</label> <input id="name" type="text">
<button onclick="document.getElementById('out').textContent =
  'Hello, ' + document.getElementById('name').value + '!'">Greet</button>
<p id="out"></p>
</body></html>"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A page on 127.0.0.1 with a random code word; yields (url, code)."""
    folder, code = tmp_path_factory.mktemp("site"), f"PELICAN-{uuid.uuid4().hex[:6].upper()}"
    (folder / "index.html").write_text(PAGE.format(code=code), encoding="utf-8")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/index.html", code
    server.shutdown()


def browser_ctx(tmp_path, make_config, **browser) -> Context:
    return Context(home=str(tmp_path / "home"), config=str(make_config({"tools": {"browser": {"enabled": True, **browser}}})))


def ref(snapshot: str, role: str, name: str) -> str:
    return re.search(rf'{role} "{name}" \[ref=(\w+)\]', snapshot).group(1)


def test_navigate_snapshot_type_click(tmp_path, make_config, site):
    url, code = site
    ctx = browser_ctx(tmp_path, make_config)
    tools = {t.name: t for t in mcp.tools(ctx, lambda line: pytest.fail(line))}
    assert {"browser_navigate", "browser_snapshot", "browser_click", "browser_type"} <= set(tools)
    assert "browser_run_code_unsafe" not in tools  # code in the node process is never offered
    assert tools["browser_click"].metadata == {"source": "mcp:browser", "untrusted": True}
    config = json.loads((Path(ctx.home) / "browser" / "config.json").read_text())
    assert config["browser"]["isolated"] and config["browser"]["launchOptions"]["chromiumSandbox"] is False

    assert "Page Title: Order desk" in call(tools["browser_navigate"], ctx, url=url).text
    page = call(tools["browser_snapshot"], ctx).text
    assert f"The code word is {code}." in page
    typed = call(tools["browser_type"], ctx, element="name field", target=ref(page, "textbox", "Your name"),
                 text="Ada")
    assert typed.status != "error", typed.text
    clicked = call(tools["browser_click"], ctx, element="Greet button", target=ref(page, "button", "Greet"))
    assert clicked.status != "error", clicked.text
    assert "Hello, Ada!" in call(tools["browser_snapshot"], ctx).text
    missing = call(tools["browser_click"], ctx, target="e999")  # a model's mistake is an observation
    assert missing.status == "error" and missing.text


class ReadingChat(ScriptedChat):
    """Scripted, except that the reply "READ" answers with the code word in the last tool result it saw."""

    def _stream(self, messages, *args, **kwargs):
        if self.replies and self.replies[0] == "READ":
            seen = next(m.text for m in reversed(messages) if m.type == "tool")
            found = re.search(r"code word is ([\w-]+)", seen)
            self.replies[0] = f"The code word on the page is {found.group(1) if found else 'not there'}."
        yield from super()._stream(messages, *args, **kwargs)


def test_agent_turn_reads_a_value_from_the_page(tmp_path, make_config, site):
    url, code = site
    ctx = browser_ctx(tmp_path, make_config)
    model = ReadingChat(replies=[{"tool": "browser_navigate", "args": {"url": url}},
                                 {"tool": "browser_snapshot", "args": {}}, "READ"])
    install(ctx, model)
    answer = "".join(data for kind, data in Session(ctx).turn("What is the code word on my page?") if kind == "token")
    assert answer == f"The code word on the page is {code}."
    rows = Session(ctx).store.history()
    tools = [r for r in rows if r["role"] == "tool"]
    assert [r["name"] for r in tools] == ["browser_navigate", "browser_snapshot"]
    assert code in tools[1]["content"]


def test_missing_pieces_give_one_line(tmp_path, make_config, monkeypatch):
    lines = []
    ctx = browser_ctx(tmp_path, make_config, executable="/nowhere/chromium")
    assert mcp.tools(ctx, lines.append) == [] and mcp.tools(ctx, lines.append) == []
    assert lines == [("MCP server browser did not start: tools.browser.executable: no such program "
                      "/nowhere/chromium; going on without it")]
    monkeypatch.setattr(mcp, "BROWSER_CLI", tmp_path / "absent" / "cli.js")
    lines.clear()
    mcp.tools(browser_ctx(tmp_path, make_config, headless=True, executable=""), lines.append)
    assert len(lines) == 1 and "npm ci --prefix" in lines[0] and lines[0].endswith("going on without it")
    assert mcp.tools(browser_ctx(tmp_path, make_config, enabled=False), pytest.fail) == []
