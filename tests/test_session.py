"""The endless session with a scripted model: bounded window and summary, prompt layout,
checkpoint pruning, search and backup. (Crashes and many terminals: test_crash.py.)"""

import json
import sqlite3
import subprocess
import sys
import time

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from conftest import ROOT, agent_env
from fakes import ScriptedChat, install
from graph.context import Context
from graph.learning import feedback
from graph.models import llm, window
from graph.session import Session


def count(text: str) -> int:
    return len(text) // 4


def test_prompt_fits_and_never_cuts_the_system_prompt():
    system = "S" * 400  # 100 tokens
    msgs = [HumanMessage("q" * 400, id="h1"), AIMessage("a" * 400, id="a1"),
            HumanMessage("q" * 400, id="h2"), AIMessage("a" * 400, id="a2"), HumanMessage("last", id="h3")]
    out = window.prompt(system, "", msgs, [], budget=400, count=count)
    assert out[0].content == system
    assert [m.id for m in out[1:]] == ["h2", "a2", "h3"]  # oldest dropped, starts at a user message
    assert sum(count(m.text) + window.OVERHEAD for m in out) <= 400


def test_prompt_layout_is_system_summary_window_extra():
    extra = [HumanMessage("memories")]
    out = window.prompt("SYS", "they like tea", [HumanMessage("hi")], extra, budget=1000, count=count)
    assert out[0].content.startswith("SYS") and "they like tea" in out[0].content
    assert [m.content for m in out[1:]] == ["hi", "memories"]


def test_one_huge_message_keeps_its_head_and_tail():
    text = "BEGIN " + "x" * 20000 + " END"
    out = window.prompt("SYS", "", [HumanMessage(text)], [], budget=1000, count=count)
    kept = out[-1].content
    assert kept.startswith("BEGIN") and kept.endswith("END") and "characters cut" in kept
    assert count(kept) + window.OVERHEAD + count("SYS") + 2 * window.OVERHEAD <= 1000


def test_window_never_starts_inside_a_tool_exchange():
    msgs = [HumanMessage("q" * 400), AIMessage("", tool_calls=[{"name": "t", "args": {}, "id": "c"}]),
            ToolMessage("r" * 400, tool_call_id="c"), AIMessage("a"), HumanMessage("now")]
    out = window.prompt("S", "", msgs, [], budget=150, count=count)
    assert out[1].type == "human" and out[-1].content == "now"


def test_foldable_keeps_the_last_turns():
    msgs = [HumanMessage("1"), AIMessage("1"), HumanMessage("2"), AIMessage("2"), HumanMessage("3"), AIMessage("3")]
    assert [m.content for m in window.foldable(msgs, 2)] == ["1", "1"]
    assert window.foldable(msgs, 3) == []


def long_session(tmp_path, make_config, turns, **session):
    ctx = Context(home=str(tmp_path / "home"),
                  config=str(make_config({"session": {"keep_turns": 2, **session}, "llm": {"max_tokens": 100}})))
    model = ScriptedChat(replies=[])
    install(ctx, model, context_window=1000)
    s = Session(ctx)
    for i in range(turns):
        model.replies.append(f"answer {i} " + "word " * 60)
        list(s.turn(f"question {i} " + "ask " * 60))
    return s, model


class Slow(ScriptedChat):
    """A model that writes its first answer's first word, then the rest only once the session's stop
    signal is set."""

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        chunks = super()._stream(messages, stop, run_manager, **kwargs)
        yield next(chunks)
        if len(self.calls) == 1:
            self.stop_signal.wait(30)
        yield from chunks


def test_leaving_a_turn_mid_answer_stops_it_and_frees_the_session(tmp_path, make_config):
    ctx = Context(home=str(tmp_path / "home"), config=str(make_config({})))
    install(ctx, Slow(replies=["Once upon a time there was a cat", "Hello there"]))
    s = Session(ctx)
    events = s.turn("Tell me a story")
    assert next(data for kind, data in events if kind == "token") == "Once"
    started = time.monotonic()
    events.close()  # the front end leaves while the model is still writing (the graph runs in the session's thread)
    assert time.monotonic() - started < 10  # the answer was stopped, not waited out
    assert not ctx.stop.is_set()  # and the next turn does not start stopped
    answer = s.messages()[-1]
    assert answer.type == "ai" and answer.text.startswith("Once") and len(answer.text) < len("Once upon a time there")
    assert [kind for kind, _ in s.turn("Hi")][-1] != "notice"  # the session is free: the next turn runs
    assert s.messages()[-1].text == "Hello there" and s.store.turns() == 2


def test_old_turns_fold_into_the_summary_and_stay_in_the_transcript(tmp_path, make_config):
    s, model = long_session(tmp_path, make_config, 12)
    messages = s.messages()
    assert 2 <= sum(m.type == "human" for m in messages) < 12  # bounded window
    assert messages[-1].content.startswith("answer 11")
    assert s.summary()  # written by the model (the scripted one answers "ok" to the fold request)
    assert len(s.store.history()) == 24  # nothing lost
    last_prompt = [c for c in model.calls if c[0].type == "system"][-1]  # not a summarize call
    assert last_prompt[0].type == "system" and s.summary() in last_prompt[0].content
    asked = [m for m in last_prompt if m.type == "human"][-1]  # after it: per-turn material (memories)
    assert asked.content.startswith("question 11")


def test_the_embedded_model_folds_without_writing_a_summary(tmp_path, make_config):
    """SmolLM2-135M loops or copies "(none)" when asked for a summary, at 15-25 s a fold: its summary
    keeps the user's requests, the newest within session.summary_tokens, with no model call."""
    ctx = Context(home=str(tmp_path / "home"), config=str(make_config(
        {"session": {"keep_turns": 2, "summary_tokens": 60}, "llm": {"max_tokens": 100}})))
    model = ScriptedChat(replies=[])
    install(ctx, model, context_window=1000, name="embedded")
    s = Session(ctx)
    for i in range(12):
        model.replies.append(f"answer {i} " + "word " * 60)
        list(s.turn(f"question {i} " + "ask " * 60))
    assert all(call[0].type == "system" for call in model.calls)  # answers only: no fold request
    summary = s.summary().splitlines()
    assert summary and all(line.startswith("- The user asked: question ") for line in summary)
    folded = [int(line.split()[5]) for line in summary]
    assert folded == sorted(folded) and folded[-1] >= 6 and llm.active(ctx).count_tokens(s.summary()) <= 60
    assert 2 <= sum(m.type == "human" for m in s.messages()) < 12 and len(s.store.history()) == 24


def test_a_summary_of_requests_keeps_the_newest_within_its_limit():
    words = lambda text: len(text.split())  # noqa: E731
    asked = [HumanMessage("What is photosynthesis?"), AIMessage("Plants make sugar."), HumanMessage("Why  is\nthe sky blue?")]
    assert llm.requests("", asked, 100, words) == \
        "- The user asked: What is photosynthesis?\n- The user asked: Why is the sky blue?"
    assert llm.requests("An earlier summary.", asked, 12, words) == "- The user asked: Why is the sky blue?"
    assert words(llm.requests("", [HumanMessage("word " * 500)], 20, words)) <= 20


def test_summary_changes_rarely_so_the_prefix_is_stable(tmp_path, make_config):
    s, model = long_session(tmp_path, make_config, 20)
    answers = [c for c in model.calls if c[0].type == "system"]  # answers, not summarize calls
    prefixes = [c[0].content for c in answers]
    changes = sum(a != b for a, b in zip(prefixes, prefixes[1:]))
    assert 1 <= changes <= len(prefixes) // 3


def test_old_checkpoints_are_pruned(tmp_path, make_config):
    s, _ = long_session(tmp_path, make_config, 8, keep_checkpoints=2)
    with sqlite3.connect(s.store.path) as db:
        assert db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 2
        kept = {r[0] for r in db.execute("SELECT checkpoint_id FROM checkpoints")}
        written = {r[0] for r in db.execute("SELECT DISTINCT checkpoint_id FROM writes")}
    assert written <= kept
    again = Session(s.ctx)  # the pruned session still resumes
    assert again.messages()[-1].content.startswith("answer 7")


def test_search_and_backup_from_the_cli(tmp_path, make_config):
    s, _ = long_session(tmp_path, make_config, 3)
    list(s.turn("日本語の質問です"))
    home = tmp_path / "home"
    found = subprocess.run([sys.executable, str(ROOT / "agent.py"), "history", "--search", "質問", "--json"],
                           capture_output=True, text=True, env=agent_env(home), timeout=60)
    rows = json.loads(found.stdout)
    assert [r["content"] for r in rows] == ["日本語の質問です"] and rows[0]["turn"] == 4
    percent = subprocess.run([sys.executable, str(ROOT / "agent.py"), "history", "--search", "100%", "--json"],
                             capture_output=True, text=True, env=agent_env(home), timeout=60)
    assert json.loads(percent.stdout) == []  # % is a literal, not a wildcard
    out = subprocess.run([sys.executable, str(ROOT / "agent.py"), "backup"], capture_output=True, text=True,
                         env=agent_env(home), timeout=60)
    assert out.returncode == 0 and "backup written" in out.stdout
    copy = next((home / "backups").glob("agent-*.db"))
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT COUNT(*) FROM transcript").fetchone()[0] == len(s.store.history())
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_user_writing_japanese_to_the_embedded_model_is_told_once_in_japanese(tmp_path, make_config):
    """The bundled SmolLM2 cannot answer in Japanese: a user who writes Japanese is told so, in
    Japanese, with how to get Ollama and Qwen2, once (not every turn); not in English, nor on Ollama."""
    def japanese_notices(session, text):
        return [data for kind, data in session.turn(text) if kind == "notice" and "日本語" in data]

    ctx = Context(home=str(tmp_path / "home"), config=str(make_config({})), cwd=str(tmp_path))
    install(ctx, ScriptedChat(replies=[]), name="embedded")
    session = Session(ctx)
    assert japanese_notices(session, "What is the capital of France?") == []
    said = japanese_notices(session, "猫の名前はモチです。")
    assert len(said) == 1 and "英語で答えます" in said[0] and "ollama pull qwen2:7b-instruct" in said[0]
    assert japanese_notices(session, "ペットの名前は？") == []
    other = Context(home=str(tmp_path / "other"), config=str(make_config({})), cwd=str(tmp_path))
    install(other, ScriptedChat(replies=[]), name="ollama")
    assert japanese_notices(Session(other), "猫の名前はモチです。") == []


def test_the_embedded_model_is_told_to_answer_a_japanese_message_in_english(tmp_path, make_config):
    """SmolLM2-135M garbles Japanese: its system prompt asks for English when the message is
    Japanese (as the notice says), not for an English message, and not on Ollama."""
    def system_prompt(name, text):
        ctx = Context(home=str(tmp_path / name / text[:3]), config=str(make_config({})), cwd=str(tmp_path))
        model = ScriptedChat(replies=["ok"])
        install(ctx, model, name=name)
        list(Session(ctx).turn(text))
        return model.calls[0][0].text

    english = feedback.preference("english").instruction
    assert english in system_prompt("embedded", "猫の名前は何ですか？")
    assert english not in system_prompt("embedded", "What is my cat called?")
    assert english not in system_prompt("ollama", "猫の名前は何ですか？")


def test_the_embedded_model_sees_only_the_last_exchanges_word_for_word(tmp_path, make_config):
    """SmolLM2 copies earlier answers into new ones: it is shown `llm.embedded.history_turns`
    earlier exchanges (1 by default; measured with tests/bench/bench_facts.py), Ollama models the
    whole window; the session's state keeps every message either way."""
    def shown(session, model, text):
        list(session.turn(text))
        return " ".join(m.text for m in model.calls[0])

    questions = ["What is the capital of Japan?", "What is the largest planet?", "What do bees make?"]
    for name, settings, seen in (("embedded", {}, questions[1:]), ("embedded", {"llm": {"embedded": {"history_turns": 0}}},
                                 questions[2:]), ("ollama", {}, questions)):
        home = tmp_path / f"{name}-{len(seen)}"
        ctx = Context(home=str(home), config=str(make_config(settings, name=f"{home.name}.yaml")), cwd=str(tmp_path))
        model = ScriptedChat(replies=[])
        install(ctx, model, name=name)
        session = Session(ctx)
        for question in questions[:2]:
            list(session.turn(question))
        model.calls = []
        prompt = shown(session, model, questions[2])
        assert [q for q in questions if q in prompt] == seen, name
        assert [m.text for m in session.messages() if m.type == "human"] == questions
