"""Self-made tools: create_tool's checks, the limited subprocess (sandbox.py), storage, load after a restart, remove.
Every tool here really runs in a `python -I` subprocess."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT
from tooling import call

from graph.context import Context
from graph.tools import made, sandbox

COUNTER = '''
import unicodedata
from typing import Optional


def count_chars(text: str, ignore_spaces: bool = True, only: Optional[str] = None) -> dict:
    """Count the characters of a text by script: kanji, hiragana, katakana, latin and other.

    Args:
        text: the text to count
        ignore_spaces: leave spaces out of the counts
    """
    counts = {"kanji": 0, "hiragana": 0, "katakana": 0, "latin": 0, "other": 0}
    for ch in text:
        if ignore_spaces and ch.isspace():
            continue
        name = unicodedata.name(ch, "")
        kind = next((k for k in ("CJK", "HIRAGANA", "KATAKANA", "LATIN") if name.startswith(k)), "other")
        counts[{"CJK": "kanji"}.get(kind, kind.lower())] += 1
    counts["total"] = sum(counts.values())
    return {only: counts[only]} if only else counts
'''


def tool_code(body: str, head: str = "", params: str = "x: int", name: str = "bad_tool") -> str:
    """A tool `name` whose body is `body` (indented), after module-level `head`."""
    lines = "\n".join("    " + line for line in body.strip().splitlines())
    return f'{head}\n\ndef {name}({params}) -> str:\n    """A tool under test."""\n{lines}\n'


@pytest.fixture
def ctx(tmp_path, make_config):
    return Context(home=str(tmp_path / "home"), config=str(make_config({"tools": {"made": {"timeout_s": 2}}})))


def create(ctx, name, code, test_args=None):
    return call(made.create_tool, ctx, name=name, code=code, test_args=test_args or {})


def test_created_listed_loaded_after_restart_and_called(ctx):
    reply = create(ctx, "count_chars", COUNTER, {"text": "日本語 ひらがな カタカナ abc"})
    assert reply.status != "error", reply.text
    assert reply.text.startswith("Created the tool count_chars")
    assert '"kanji": 3' in reply.text and '"total": 14' in reply.text
    meta = json.loads((made._folder(ctx) / "count_chars.json").read_text(encoding="utf-8"))
    assert meta["args_schema"]["required"] == ["text"]
    assert meta["args_schema"]["properties"]["ignore_spaces"] == {
        "type": "boolean", "default": True, "description": "leave spaces out of the counts"}
    [row] = made.listing(ctx)
    assert row["name"] == "count_chars" and row["description"].startswith("Count the characters") and row["created"]

    # a restart: a fresh process loads the stored tool and calls it
    script = ("import json; from graph.context import Context; from graph.tools import made\n"
              f"ctx = Context(home={ctx.home!r}, config={ctx.config!r})\n"
              "[t] = made.load(ctx, print)\n"
              "print(t.name, json.dumps(t.args))\n"
              "print(t.invoke({'text': 'カタカナ 漢字', 'only': 'katakana'}))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().splitlines()
    assert first.startswith("count_chars ") and '"text"' in first
    assert json.loads(second) == {"katakana": 4}

    [loaded] = made.load(ctx)
    assert loaded.metadata == {"source": "self-made"}
    assert made.load(ctx)[0] is loaded  # cached while the folder is unchanged
    expected = {"kanji": 0, "hiragana": 2, "katakana": 0, "latin": 0, "other": 0, "total": 2}
    assert json.loads(call(loaded, ctx, text="あ い").text) == expected
    bad = call(loaded, ctx, text=3, colour="red")
    assert bad.status == "error" and "unknown argument 'colour'" in bad.text
    assert "argument 'text' must be string, got 3" in bad.text


def test_replace_says_so_and_takes_effect(ctx):
    assert create(ctx, "bmi", tool_code("return f'{x}'", params="x: float", name="bmi"), {"x": 1}).status != "error"
    better = '''
def bmi(weight_kg: float, height_m: float) -> float:
    """Body mass index from weight in kilograms and height in metres."""
    return round(weight_kg / height_m ** 2, 1)
'''
    reply = create(ctx, "bmi", better, {"weight_kg": 70, "height_m": 1.75})
    assert reply.text.startswith("Replaced the old tool bmi") and "returned: 22.9" in reply.text
    [tool] = made.load(ctx)
    assert call(tool, ctx, weight_kg=90, height_m=1.8).text == "27.8"


REJECTED = [
    ("def bad_tool(x: int) -> str\n    return 'x'", "does not parse"),
    ("def other(x: int) -> str:\n    '''Doc.'''\n    return 'x'", "no top-level function named bad_tool"),
    ("def bad_tool(x: int) -> str:\n    return 'x'", "has no docstring"),
    (tool_code("return str(x)", params="x"), "parameter x has no type annotation"),
    (tool_code("return str(x)", params="x: set"), "parameter x: set is not a JSON type"),
    ("def bad_tool(x: int):\n    '''Doc.'''\n    return 'x'", "has no return type"),
    (tool_code("return os.getcwd()", head="import os"), "import os is not allowed"),
    (tool_code("return subprocess.run('ls')", head="import subprocess"), "import subprocess is not allowed"),
    (tool_code("return str(socket())", head="from socket import socket"), "import from socket is not allowed"),
    (tool_code("return str(typing.sys.modules)", head="import typing"), "the attribute .sys is not allowed"),
    (tool_code("return __import__('os').getcwd()"), "__import__ is not allowed"),
    (tool_code("return open('/etc/passwd').read()"), "open is not allowed"),
    (tool_code("return str(eval('1+1'))"), "eval is not allowed"),
    (tool_code("return str(().__class__.__bases__[0].__subclasses__())"), "the attribute .__class__ is not allowed"),
    (tool_code("g = (i for i in [1])\nreturn str(g.gi_frame.f_back)"), "the attribute .gi_frame is not allowed"),
    (tool_code("return '{0.__class__}'.format(x)"), "strings naming dunder attributes"),
    (tool_code("return helper(x)", head="from .helpers import helper"), "relative imports are not allowed"),
    (tool_code("return 'x'", head="print('hello')"), "only imports, functions, classes and constant assignments"),
]


@pytest.mark.parametrize("code, message", REJECTED, ids=[m for _, m in REJECTED])
def test_rejected_before_running(ctx, code, message):
    reply = create(ctx, "bad_tool", code, {"x": 1})
    assert reply.status == "error" and message in reply.text, reply.text
    assert made.listing(ctx) == [] and made.load(ctx) == []


@pytest.mark.parametrize("name, message", [("BadName", "bad name"), ("a" * 41, "bad name"),
                                           ("current_time", "built-in tool"), ("create_tool", "built-in tool")])
def test_bad_names(ctx, name, message):
    reply = create(ctx, name, tool_code("return 'x'", name=name), {"x": 1})
    assert reply.status == "error" and message in reply.text, reply.text


RUN_FAILURES = [
    (tool_code("return str(1 // (x - 1))"), {"x": 1},
     "failed: ZeroDivisionError: integer division or modulo by zero (line 5)"),
    (tool_code("while True:\n    x += 1"), {"x": 1}, "took longer than 2 s and was stopped"),
    (tool_code("return str(len('x' * 2 ** 31))"), {"x": 1}, "used more than 512 MB of memory"),
    (tool_code("return 'x' * 10 ** 6"), {"x": 1}, "returned 1000000 characters, more than the 20000 allowed"),
    (tool_code("return {1, 2}"), {"x": 1}, "cannot be turned into JSON"),
    (tool_code("return 'x'"), {"y": 1}, "unknown argument 'y'; missing argument 'x'"),
    (tool_code("return 'x'"), {"x": "1"}, "argument 'x' must be integer, got '1'"),
]


@pytest.mark.parametrize("code, args, message", RUN_FAILURES, ids=[m[:30] for *_, m in RUN_FAILURES])
def test_failing_test_call_is_not_stored(ctx, code, args, message):
    reply = create(ctx, "bad_tool", code, args)
    assert reply.status == "error" and message in reply.text, reply.text
    assert made.listing(ctx) == []


def test_runner_guards_imports_and_builtins_at_run_time(ctx):
    """Even code that slipped past the static checks cannot import or open at run time."""
    settings = ctx.settings.tools.made

    def run(code, **kwargs):
        return sandbox.run("f", code, kwargs, imports=settings.imports, timeout_s=settings.timeout_s)

    with pytest.raises(sandbox.ToolException, match="import of os is not allowed"):
        run("def f():\n    import os\n    return os.getcwd()")
    with pytest.raises(sandbox.ToolException, match="NameError: name 'open' is not defined"):
        run("def f():\n    return open('/etc/passwd').read()")
    for hidden in ("typing.sys", "enum.bltns", "uuid.os", "random._os", "typing.get_type_hints"):
        module, attr = hidden.split(".")
        with pytest.raises(sandbox.ToolException, match=f"module '{module}' has no attribute '{attr}'"):
            run(f"import {module}\ndef f():\n    return str({hidden})")
    code = "import math\ndef f(n):\n    print('noise')\n    return math.factorial(n)"
    assert run(code, n=5) == "120"


def test_everyday_python_passes_the_checks(ctx):
    code = '''
from dataclasses import dataclass, field
from enum import Enum
from collections import Counter
import urllib.parse
from typing import List, Literal, Optional

UNITS = {"km": 1000, "m": 1}


class Kind(Enum):
    WORD = 1


@dataclass
class Tally:
    words: list = field(default_factory=list)

    def add(self, word):
        self._last = word
        self.words.append(word)


def word_stats(text: str, unit: Literal["km", "m"] = "m", top: Optional[int] = None, tags: List[str] = []) -> dict:
    """Word statistics of a text."""
    tally = Tally()
    for word in text.split():
        tally.add(word)
    return {"top": Counter(tally.words).most_common(top), "kind": Kind.WORD.name, "unit": UNITS[unit],
            "url": urllib.parse.quote(text), "tags": tags}
'''
    reply = create(ctx, "word_stats", code, {"text": "a b a", "top": 1})
    assert reply.status != "error", reply.text
    assert '"top": [["a", 2]]' in reply.text and '"url": "a%20b%20a"' in reply.text


def test_broken_stored_tool_is_skipped_with_a_warning(ctx):
    assert create(ctx, "bmi", tool_code("return 'ok'", name="bmi"), {"x": 1}).status != "error"
    folder = made._folder(ctx)
    (folder / "ghost.json").write_text("{}", encoding="utf-8")  # its code is missing
    (folder / "mangled.json").write_text("{not json", encoding="utf-8")
    (folder / "mangled.py").write_text("def mangled(", encoding="utf-8")
    (folder / "Bad-Name.json").write_text("{}", encoding="utf-8")
    warnings = []
    assert [t.name for t in made.load(ctx, warnings.append)] == ["bmi"]
    assert len(warnings) == 3 and all("skipped" in w for w in warnings), warnings
    assert made.load(ctx, warnings.append)[0].name == "bmi" and len(warnings) == 3  # cached: no repeated warnings
    assert {r["name"] for r in made.listing(ctx)} == {"bmi", "ghost", "mangled", "Bad-Name"}


def test_remove_and_remove_missing(ctx):
    assert create(ctx, "bmi", tool_code("return 'ok'", name="bmi"), {"x": 1}).status != "error"
    assert len(made.load(ctx)) == 1
    assert made.remove(ctx, "bmi") == "removed the self-made tool bmi"
    assert made.load(ctx) == [] and made.listing(ctx) == []
    for name in ("bmi", "../config"):
        with pytest.raises(made.ToolException, match="no self-made tool named"):
            made.remove(ctx, name)
