"""Visible reasoning: the streaming <think> parser (property-based: any split of a stream into
chunks means the same), the think-or-not router, the loop/budget guards and the quality score,
the graph with a scripted model (prompt layout, context hygiene, cut and forced answer), and
the REPL and the command line with the real embedded model."""

import json
import re
import subprocess
import sys
import time

import pexpect
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessageChunk

from conftest import ROOT, agent_env
from fakes import ScriptedChat, install
from graph.context import Context
from graph.models import prompts
from graph.models.thinking import CLOSE, OPEN, ThinkParser, Trace, looping, needs_thinking, score, steps
from graph.session import Session

# --- the parser ---------------------------------------------------------------------------


def meaning(text: str) -> tuple[str, str]:
    """(thoughts, answer) of a whole stream, as ThinkParser's docstring defines it: text before
    the first <think> is answer, text up to </think> is thought, the rest is answer; no <think>:
    all answer; no </think>: all the rest is thought. Leading blanks of the answer are dropped
    (of the part said before thinking and of the part after it)."""
    start = text.find(OPEN)
    if start < 0:
        return "", text.lstrip()
    before, rest = text[:start], text[start + len(OPEN):]
    end = rest.find(CLOSE)
    if end < 0:
        return rest, before.lstrip()
    return rest[:end], before.lstrip() + rest[end + len(CLOSE):].lstrip()


def parse(chunks: list[str]) -> tuple[str, str, list[tuple[str, str]]]:
    """Feed `chunks` one by one; check what the parser holds back after each; return
    (thoughts, answer, pieces)."""
    parser, pieces = ThinkParser(), []
    for chunk in chunks:
        pieces += parser.feed(chunk)
        if parser.state == "pre":  # held back only blanks and what may begin "<think>"
            assert OPEN.startswith(parser.pending.lstrip()), parser.pending
        elif parser.state == "think":  # held back only what may begin "</think>"
            assert len(parser.pending) < len(CLOSE) and CLOSE.startswith(parser.pending), parser.pending
        else:
            assert parser.pending == ""  # after thinking, the answer streams without delay
    pieces += parser.finish()
    assert parser.pending == ""
    assert all(kind in ("think", "answer") and text for kind, text in pieces)  # never an empty piece
    thoughts = "".join(text for kind, text in pieces if kind == "think")
    answer = "".join(text for kind, text in pieces if kind == "answer")
    assert (thoughts, answer) == ("".join(parser.thoughts), "".join(parser.answer))
    return thoughts, answer, pieces


TOKENS = ["<think>", "</think>", "<", ">", "/", "think", "The", " answer", " 42", "\n", "  ", "思考", "答え",
          "a < b", "</", "<thi", "nk>", "</th", "ink>", "<<", "\t"]
streams = st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=6)), max_size=40).map("".join)


def split(text: str, cuts: list[int]) -> list[str]:
    points = [0, *sorted(min(cut, len(text)) for cut in cuts), len(text)]
    return [text[a:b] for a, b in zip(points, points[1:])]


@settings(max_examples=400, deadline=None)
@given(text=streams, data=st.data())
@example(text="Sure. <think>1. add</think>\n\nThe answer is 8.", data=None)
@example(text="  <thi", data=None)
@example(text="<think>a</thi", data=None)
def test_any_split_gives_the_same_thoughts_and_answer(text, data):
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12)) if data is not None else [3, 7, 9]
    whole = parse([text])[:2]
    assert whole == meaning(text)
    assert parse(split(text, cuts))[:2] == whole
    assert parse(list(text))[:2] == whole  # one character at a time


@settings(max_examples=200, deadline=None)
@given(before=st.text(max_size=20), thought=st.text(max_size=30), after=st.text(max_size=20), data=st.data())
def test_thoughts_and_answer_rebuild_the_stream(before, thought, after, data):
    """A well-formed stream: thoughts are exactly what was between the tags, and the answer is
    the text around them without the tags and without its leading blanks."""
    text = before + OPEN + thought + CLOSE + after
    if OPEN in before or CLOSE in OPEN + thought:
        return  # not the first tags of the stream
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=10))
    thoughts, answer, _ = parse(split(text, cuts))
    assert thoughts == thought
    assert answer == before.lstrip() + after.lstrip()


@pytest.mark.parametrize("chunks, thoughts, answer", [
    # tags split across chunks
    (["<th", "ink>Let me", " see.</th", "ink>", "  The answer", " is 42."], "Let me see.", "The answer is 42."),
    (["<", "t", "h", "i", "n", "k", ">", "x", "<", "/", "think", ">", "y"], "x", "y"),
    # no closing tag: all the rest is thought
    (["<think>1. add", " 3 and 5", "</thi"], "1. add 3 and 5</thi", ""),
    # text before the tag is said aloud
    (["Sure! ", "<think>x</think>", "\n\n8"], "x", "Sure! 8"),
    (["\n  \n", "<think>\n1. 3+5=8\n</think>\n\nThe answer is 8."], "\n1. 3+5=8\n", "The answer is 8."),
    # the model ignored the instruction: all answer
    (["The answer", " is 8."], "", "The answer is 8."),
    (["  ", "\n", "Hello"], "", "Hello"),
    # a literal "<" in the answer, in the thoughts, and a tag-like text after thinking
    (["if a <", " b then", " c <"], "", "if a < b then c <"),
    (["<think>is a < b? ", "a </", "b</think>yes"], "is a < b? a </b", "yes"),
    (["<think>x</think>", "use <think> tags"], "x", "use <think> tags"),
    (["<think>まず", "考える</think>\n答えは8です。"], "まず考える", "答えは8です。"),
])
def test_explicit_streams(chunks, thoughts, answer):
    assert parse(chunks)[:2] == (thoughts, answer)
    assert meaning("".join(chunks)) == (thoughts, answer)


def test_pieces_stream_as_soon_as_they_are_certain():
    parser = ThinkParser()
    assert parser.feed("<think>1. add") == [("think", "1. add")]
    assert parser.thinking
    assert parser.feed(" 3</") == [("think", " 3")]  # "</" may be the closing tag: held
    assert parser.feed("b>") == [("think", "</b>")]  # it was not
    assert parser.feed("</think>  ") == []  # blanks before the answer are dropped
    assert not parser.thinking
    assert parser.feed("  8") == [("answer", "8")]
    assert parser.feed(" <") == [("answer", " <")]  # after thinking nothing is held back
    plain = ThinkParser()
    assert plain.feed("a <") == [("answer", "a ")]  # "<" may begin <think>: held
    assert plain.feed(" b") == [("answer", "< b")]
    assert plain.feed("<thi") == [] and plain.finish() == [("answer", "<thi")]


# --- the streamed call --------------------------------------------------------------------


def test_trace_native_and_parsed_thoughts():
    native = Trace(parse=False, budget_tokens=100)
    pieces = native.feed(AIMessageChunk(content="", additional_kwargs={"reasoning_content": "1. add"}))
    pieces += native.feed(AIMessageChunk(content="The <think> answer"))  # native: text is never parsed
    assert pieces == [("think", "1. add"), ("answer", "The <think> answer")] and native.finish() == []
    assert native.thought_tokens == 1 and not native.cut and native.first_thought <= native.first_answer
    parsed = Trace(parse=True, budget_tokens=100)
    for text in ["<think>", "1.", " add</th", "ink>8"]:
        parsed.feed(AIMessageChunk(content=text))
    parsed.finish()
    assert (parsed.thought_text, parsed.answer_text) == ("1. add", "8")


def test_trace_cuts_at_the_budget_and_on_a_loop():
    budget = Trace(parse=True, budget_tokens=5)
    for i in range(6):
        budget.feed(AIMessageChunk(content=f"<think>step {i}. " if i == 0 else f"step {i}. "))
        assert bool(budget.cut) == (i == 5)  # the 6th thought token passes a budget of 5
    assert "budget of 5" in budget.cut
    loop = Trace(parse=True, budget_tokens=10_000)
    loop.feed(AIMessageChunk(content="<think>"))
    for i in range(40):
        if loop.cut:
            break
        loop.feed(AIMessageChunk(content="I should add the numbers again. "))
    assert "loop" in loop.cut and i < 20


# --- routing --------------------------------------------------------------------------------

SIMPLE = ["hi", "Hello! How are you?", "Good morning", "Thanks, that's great!", "What is the capital of France?",
          "Who wrote Hamlet?", "Tell me a joke.", "こんにちは", "ありがとう！", "日本の首都は？", "こんにちは、元気ですか？"]
COMPLEX = ["What is 12*7?", "12 + 30 = ?", "What is 15% of 80?", "Why is the sky blue?", "why?",
           "How do I fix this bug?", "Explain recursion", "Plan a trip to Kyoto for three days, step by step.",
           "Write a Python function that reverses a string.", "```py\nprint(1)\n```", "Compare Rust and Go.",
           "なぜ空は青いのですか？", "手順を説明して", "東京から大阪への旅行を計画して", "12×7は？",
           "I have a question. It is about my garden. The roses die every summer."]


@pytest.mark.parametrize("text", SIMPLE)
def test_simple_messages_go_straight_to_the_answer(text):
    assert needs_thinking(text) is False


@pytest.mark.parametrize("text", COMPLEX)
def test_complex_messages_think_first(text):
    assert needs_thinking(text) is True


# --- guards and quality ---------------------------------------------------------------------

GOOD = "1. Add 3 and 5: 3 + 5 = 8.\n2. Check: 8 - 5 = 3, correct.\n3. So the answer is 8."


def test_looping():
    assert looping("I should add the numbers again. " * 10)
    assert looping("ab" * 200)
    assert not looping("I should add the numbers again. " * 2)  # too short to call a loop
    varied = " ".join(f"step {i}: {i} + {i} = {2 * i}." for i in range(40))
    assert len(varied) > 180 and not looping(varied)


def test_steps():
    assert steps(GOOD) == ["1. Add 3 and 5: 3 + 5 = 8.", "2. Check: 8 - 5 = 3, correct.", "3. So the answer is 8."]
    assert steps("First the numbers.\n\n  Then the sum.\n") == ["First the numbers.", "Then the sum."]
    assert steps("- a\n- b\n- c") == ["- a", "- b", "- c"]
    assert steps("We add. Then we check! Done?") == ["We add.", "Then we check!", "Done?"]
    assert steps("one block") == ["one block"] and steps("  ") == []


def test_steps_of_a_japanese_trace():
    """Japanese puts no space after 。: a one-line Japanese trace still has its sentences as steps."""
    assert steps("まず3と5を足す。次に答えを確かめる。答えは8。") == ["まず3と5を足す。", "次に答えを確かめる。", "答えは8。"]
    assert steps("まず足す。\n次に確かめる。") == ["まず足す。", "次に確かめる。"]


def test_score_prefers_a_good_trace_and_halves_a_cut_one():
    good = score(GOOD, "The answer is 8.", budget_tokens=64, tokens=30)
    repetitive = score("let me think again about it " * 12, "The answer is 8.", budget_tokens=64, tokens=100)
    assert good["score"] > repetitive["score"] + 0.4
    assert good["steps"] == 3 and good["has_steps"] == 1.0 and good["consistent"] == 1.0 and good["length"] == 1.0
    assert repetitive["no_repetition"] < 0.5 and repetitive["consistent"] == 0.0 and repetitive["length"] == 0.5
    wrong = score(GOOD, "The answer is 9.", budget_tokens=64, tokens=30)  # the answer's number is not concluded
    assert wrong["consistent"] == 0.0 and wrong["score"] < good["score"]
    cut = score(GOOD, "The answer is 8.", budget_tokens=64, tokens=30, cut="reasoning went round in a loop")
    assert cut["cut"] == "reasoning went round in a loop" and "cut" not in good
    assert cut["score"] == pytest.approx(good["score"] / 2, abs=0.001)
    assert all(0 <= s["score"] <= 1 for s in (good, repetitive, wrong, cut))
    assert score("", "", 64, 0)["score"] == 0.25  # nothing thought: only "no repetition" holds


# --- the graph with a scripted model --------------------------------------------------------

THOUGHT, ANSWER = "1. add\n2. check", "The answer is 8."


def session_with(tmp_path, make_config, replies, settings=None, model=None, think=""):
    ctx = Context(home=str(tmp_path / "home"), config=str(make_config(settings)), think=think)
    model = model or ScriptedChat()
    model.replies = list(replies)
    install(ctx, model)
    return Session(ctx), model


def set_mode(session, mode):
    session.ctx.think = mode
    session.ctx.__dict__.pop("settings", None)  # as /think does


def has_think(call) -> bool:
    return any(m.type == "system" and m.content == prompts.THINK for m in call)


def test_thinking_turn_streams_records_and_keeps_the_prompt_prefix(tmp_path, make_config):
    session, model = session_with(tmp_path, make_config, [f"<think>{THOUGHT}</think>{ANSWER}", "You are welcome."],
                                  {"reasoning": {"mode": "on"}})
    events = list(session.turn("What is 3 + 5?"))
    kinds = [kind for kind, _ in events]
    assert "".join(d for k, d in events if k == "thought") == THOUGHT
    assert "".join(d for k, d in events if k == "token") == ANSWER
    assert max(i for i, k in enumerate(kinds) if k == "thought") < min(i for i, k in enumerate(kinds) if k == "token")
    row = session.store.history()[-1]
    assert (row["role"], row["content"], row["reasoning"]) == ("assistant", ANSWER, THOUGHT)
    quality = row["meta"]["reasoning"]
    assert quality["steps"] == 2 and 0 < quality["score"] <= 1 and "cut" not in quality
    assert row["meta"]["thought_tokens"] == 3 and row["meta"]["thought_s"] >= 0
    assert dict(events)["done"] == row["meta"]
    first = model.calls[0]
    assert first[-1].type == "system" and first[-1].content == prompts.THINK  # per-turn material, last
    assert first[-2].type == "human" and first[-2].content == "What is 3 + 5?"
    assert first[0].type == "system" and prompts.THINK not in first[0].content
    assert session.messages()[-1].additional_kwargs["reasoning_content"] == THOUGHT  # the state keeps it

    set_mode(session, "off")
    list(session.turn("Thanks!"))
    second = model.calls[1]
    assert second[0].content == first[0].content  # same system prompt with and without thinking
    assert not has_think(second)
    prior = [m for m in second if m.type == "ai"]
    assert len(prior) == 1 and prior[0].content == ANSWER  # context hygiene: earlier reasoning is not sent
    assert "reasoning_content" not in prior[0].additional_kwargs and "<think>" not in prior[0].content
    assert [m.type for m in second[1:]] == ["human", "ai", "human"]
    assert session.store.history()[-1]["reasoning"] is None


def test_mode_off_never_asks_to_think(tmp_path, make_config):
    session, model = session_with(tmp_path, make_config, ["Hello!", "It is 84."], {"reasoning": {"mode": "off"}})
    assert [k for k, _ in session.turn("hi")].count("thought") == 0
    assert [k for k, _ in session.turn("Why is 12*7 equal to 84? Explain step by step.")].count("thought") == 0
    assert not any(has_think(call) for call in model.calls)
    assert all("reasoning" not in r["meta"] for r in session.store.history() if r["role"] == "assistant")


def test_auto_mode_thinks_only_for_a_complex_message(tmp_path, make_config):
    session, model = session_with(tmp_path, make_config, ["Hello!", "<think>1. 12*7 = 84</think>84", "こんにちは！",
                                                          "<think>光の散乱</think>レイリー散乱です。"])
    assert session.ctx.settings.reasoning.mode == "auto"  # the default
    for text in ["hi", "What is 12*7?", "こんにちは", "なぜ空は青いのですか？"]:
        list(session.turn(text))
    assert [has_think(call) for call in model.calls] == [False, True, False, True]
    rows = [r for r in session.store.history() if r["role"] == "assistant"]
    assert [r["reasoning"] for r in rows] == [None, "1. 12*7 = 84", None, "光の散乱"]
    assert [r["content"] for r in rows] == ["Hello!", "84", "こんにちは！", "レイリー散乱です。"]


def test_the_think_override_beats_the_config(tmp_path, make_config):
    session, model = session_with(tmp_path, make_config, ["Hello!"], {"reasoning": {"mode": "on"}}, think="off")
    list(session.turn("What is 12*7?"))
    assert not has_think(model.calls[0])


def test_a_reasoning_budget_cut_forces_the_answer(tmp_path, make_config):
    forever = "<think>" + " ".join(f"step{i}" for i in range(100))
    session, model = session_with(tmp_path, make_config, [forever, ANSWER],
                                  {"reasoning": {"mode": "on", "max_tokens": 32}})
    events = list(session.turn("What is 3 + 5?"))
    assert len(model.calls) == 2
    ask = model.calls[1][-1]
    assert ask.type == "human" and ask.content == prompts.FORCE_ANSWER.format(thoughts=" ".join(
        f"step{i}" for i in range(33)))
    conversation = lambda call: [m for m in call if m.content != prompts.THINK]  # noqa: E731
    assert conversation(model.calls[1][:-1]) == conversation(model.calls[0])  # the same conversation, then the ask
    notices = [d for k, d in events if k == "notice"]
    assert notices == ["reasoning passed its budget of 32 tokens; asking for the answer now."]
    assert "".join(d for k, d in events if k == "token") == ANSWER
    row = session.store.history()[-1]
    assert row["content"] == ANSWER and row["reasoning"].split()[-1] == "step32"
    assert row["meta"]["reasoning"]["cut"] == "reasoning passed its budget of 32 tokens"
    assert row["meta"]["thought_tokens"] == 33 and row["meta"]["tokens"] == 33 + 4


def test_a_reasoning_loop_is_cut(tmp_path, make_config):
    session, model = session_with(tmp_path, make_config, ["<think>" + "I should add the numbers again. " * 40, ANSWER],
                                  {"reasoning": {"mode": "on"}})
    list(session.turn("What is 3 + 5?"))
    row = session.store.history()[-1]
    assert len(model.calls) == 2 and row["content"] == ANSWER
    assert row["meta"]["reasoning"]["cut"] == "reasoning went round in a loop"
    assert row["meta"]["thought_tokens"] < 6 * 20  # stopped long before the 240 words of the loop


def test_reasoning_that_ends_without_an_answer_gets_one(tmp_path, make_config):
    session, model = session_with(tmp_path, make_config, ["<think>1. add 3 and 5", ANSWER],
                                  {"reasoning": {"mode": "on"}})
    list(session.turn("What is 3 + 5?"))
    row = session.store.history()[-1]
    assert (row["content"], row["reasoning"]) == (ANSWER, "1. add 3 and 5")
    assert row["meta"]["reasoning"]["cut"] == "the reasoning ended without an answer"
    assert prompts.FORCE_ANSWER.format(thoughts="1. add 3 and 5") == model.calls[1][-1].content


def test_the_answer_is_forced_only_once(tmp_path, make_config):
    """A model that keeps thinking after being told to answer is not asked again and again."""
    forever = "<think>" + " ".join(f"step{i}" for i in range(100))
    session, model = session_with(tmp_path, make_config, [forever] * 10,
                                  {"reasoning": {"mode": "on", "max_tokens": 32}})
    events = list(session.turn("What is 3 + 5?"))
    assert "done" in dict(events)
    assert len(model.calls) == 2  # the thinking call and one forced answer


class SlowAnswer(ScriptedChat):
    """Takes `delay` seconds before the second call (the forced answer) starts answering."""

    delay: float = 0.6

    def _stream(self, messages, *args, **kwargs):
        if self.calls:
            time.sleep(self.delay)
        yield from super()._stream(messages, *args, **kwargs)


def test_thought_seconds_do_not_include_the_forced_answer(tmp_path, make_config):
    session, model = session_with(tmp_path, make_config, ["<think>1. add 3 and 5", ANSWER],
                                  {"reasoning": {"mode": "on"}}, model=SlowAnswer())
    list(session.turn("What is 3 + 5?"))
    meta = session.store.history()[-1]["meta"]
    assert meta["seconds"] >= model.delay  # the turn did wait for the forced answer
    assert meta["thought_s"] < model.delay / 2  # but the thinking itself took a moment


# --- the REPL and the command line with the real embedded model ----------------------------

PROMPT = "›"
THOUGHT_LINE = r"thought for [\d.]+ s, \d+ tokens \(/why shows it\)"


def real_config(make_config):
    return make_config({"llm": {"backend": "embedded", "max_tokens": 96, "temperature": 0},
                        "reasoning": {"max_tokens": 64}, "agent": {"max_tool_rounds": 0}})


def ask(child, line) -> str:
    """Send a message; return everything shown until the next prompt."""
    child.sendline(line)
    child.expect(r"embedded · first token [\d.]+ s")
    shown = child.before + child.after
    child.expect_exact(PROMPT)
    return shown + child.before


def test_repl_shows_thinking_collapsed_and_why_expands_it(tmp_path, make_config):
    home = tmp_path / "home"
    env = dict(agent_env(home), PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm")
    child = pexpect.spawn(sys.executable, [str(ROOT / "agent.py"), "--config", str(real_config(make_config))],
                          env=env, encoding="utf-8", timeout=60, dimensions=(40, 200))
    child.expect_exact(PROMPT)
    child.sendline("/think bogus")
    child.expect_exact("usage: /think on|off|auto")
    child.expect_exact(PROMPT)
    child.sendline("/think")
    child.expect_exact("thinking: auto")  # the default mode
    child.expect_exact(PROMPT)
    child.sendline("/think on")
    child.expect_exact("thinking: on")
    child.expect_exact(PROMPT)

    shown = ask(child, "What is 12 + 7?")
    collapsed = re.search(THOUGHT_LINE, shown)
    assert collapsed, shown
    timing = shown.index("embedded · first token")
    assert collapsed.end() < timing
    rows = json.loads(subprocess.run([sys.executable, str(ROOT / "agent.py"), "history", "--json"], env=agent_env(home),
                                     capture_output=True, text=True, timeout=60).stdout)
    answer = rows[-1]
    assert answer["role"] == "assistant" and answer["reasoning"].strip() and answer["content"].strip()
    first_line = answer["content"].strip().splitlines()[0]
    assert shown.index(first_line, collapsed.end()) < timing  # thoughts, then the answer, then the timing

    child.sendline("/why")
    child.expect(r"reasoning of turn #1 · quality [\d.]+ \(\d+ steps")
    child.expect(r"1\. \S")
    child.expect_exact("answer:")
    child.expect_exact(PROMPT)

    child.sendline("/think off")
    child.expect_exact("thinking: off")
    child.expect_exact(PROMPT)
    shown = ask(child, "Hello, who are you?")
    assert "thought for" not in shown and "thinking…" not in shown
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_one_shot_with_think_on_keeps_reasoning_apart(tmp_path, make_config):
    home = tmp_path / "home"
    out = subprocess.run([sys.executable, str(ROOT / "agent.py"), "--config", str(real_config(make_config)),
                          "--think", "on", "-m", "What is 5 + 3?"], capture_output=True, text=True,
                         env=agent_env(home), timeout=120, encoding="utf-8")
    assert out.returncode == 0, out.stderr
    assert re.search(THOUGHT_LINE, out.stdout) and "embedded · first token" in out.stdout
    rows = json.loads(subprocess.run([sys.executable, str(ROOT / "agent.py"), "history", "--json"], env=agent_env(home),
                                     capture_output=True, text=True, timeout=60).stdout)
    assert [r["role"] for r in rows] == ["user", "assistant"]
    answer = rows[1]
    assert answer["reasoning"].strip() and answer["content"].strip() and answer["reasoning"] != answer["content"]
    assert not any(tag in answer["content"] for tag in (OPEN, CLOSE))
    assert not any(tag in answer["reasoning"] for tag in (OPEN, CLOSE))
    assert answer["content"].strip().splitlines()[0] in out.stdout  # what was streamed is what was kept
    assert answer["meta"]["thought_tokens"] > 0 and 0 <= answer["meta"]["reasoning"]["score"] <= 1
    assert rows[0]["reasoning"] is None
