"""The actions layer (graph/actions) called directly, as the web API and UI call it: on a real
data folder (SQLite, and Chroma with the bundled embedder for memory), with the scripted
model only where an answer or a model call is needed. The CLI, the slash commands and the
agent's tools, which call the same actions, have their own tests (test_cli.py,
test_learning_cli.py, test_repl.py, test_tools_cli.py, test_evolution.py ...)."""

import sqlite3

import pytest

from fakes import ScriptedChat, install
from graph.actions import Problem, evolution, examples, history, learning as learning_actions, memory, prompt, rewards, status
from graph.context import Context
from graph.learning import guard, selfprompt
from graph.session import Session


def session_with(tmp_path, make_config, replies, **settings) -> Session:
    settings.setdefault("memory", {"enabled": False})
    ctx = Context(home=str(tmp_path / "home"), config=str(make_config(settings)), cwd=str(tmp_path))
    install(ctx, ScriptedChat(replies=list(replies)))
    session = Session(ctx)
    return session


def chat(session: Session, *texts: str) -> None:
    for text in texts:
        events = list(session.turn(text))
        assert events[-1][0] == "done"


def test_history_pages_back_searches_and_backs_up(tmp_path, make_config):
    session = session_with(tmp_path, make_config, ["Paris.", "東京です。", "Berlin."])
    chat(session, "Capital of France?", "日本の首都は？", "Capital of Germany?")
    store = session.store
    assert [m["turn"] for m in history.history(store, 1)] == [3, 3]
    newest = history.page(store, turns=2)
    assert [(m["turn"], m["role"]) for m in newest["messages"]] == [(2, "user"), (2, "assistant"),
                                                                    (3, "user"), (3, "assistant")]
    assert newest["before"] == 2
    oldest = history.page(store, before=newest["before"], turns=2)
    assert [m["content"] for m in oldest["messages"]] == ["Capital of France?", "Paris."] and oldest["before"] is None
    assert history.page(store, before=1) == {"messages": [], "before": None}
    with pytest.raises(ValueError):
        history.page(store, turns=0)
    assert [m["content"] for m in history.search(store, "首都")] == ["日本の首都は？"]
    assert history.search(store, "nowhere") == [] and history.why(store) is None
    made = history.backup(store)
    with sqlite3.connect(made["path"]) as copy:
        assert copy.execute("SELECT COUNT(*) FROM transcript").fetchone()[0] == 6
    assert made["bytes"] > 0


def test_status_rating_and_rewards(tmp_path, make_config):
    session = session_with(tmp_path, make_config, ["Paris.", "Berlin."])
    chat(session, "Capital of France?", "Capital of Germany?")
    info = status.status(session.ctx, session.store, session.backend)
    assert info["backend"] == "fake" and info["turns"] == 2 and info["learning"]["state"] == "on"
    assert info["settings"]["llm.ollama.base_url"]["from"] == "default" and info["memories"] is None
    assert info["evolution"] == {}
    rated = rewards.rate(session.ctx, "good")
    assert rated.turn == 2 and rated.components == {"good": 1.0} and rated.reward == 1.0
    stars = rewards.rate(session.ctx, "rating", 1, turn=1)
    assert stars.turn == 1 and stars.reward == -1.0 and "rating" in stars.components
    assert rewards.rate(session.ctx, "bad").components == {"bad": -1.0}  # the latest rating replaces the earlier
    for wrong in (("rating", None), ("good", 3), ("rating", 6), ("meh", None)):
        with pytest.raises(Problem, match="rate with good, bad"):
            rewards.rate(session.ctx, *wrong)
    with pytest.raises(Problem, match="turn 9 has no answer"):
        rewards.rate(session.ctx, "good", turn=9)
    explained = rewards.explain(session.store, 1)
    assert explained.reward == -1.0 and all(key in rewards.MEANINGS for key in explained.components)
    with pytest.raises(Problem, match="turn 9 has no reward"):
        rewards.explain(session.store, 9)
    report = rewards.report(session.store, 5)
    assert [r.turn for r in report["rewards"]] == [1, 2] and set(report["policy"]) == {"arms", "best"}
    assert report["curve"][0]["first"] == 1 and report["curve"][0]["n"] == 2


def test_prompt_versions_changes_and_their_log(tmp_path, make_config):
    session = session_with(tmp_path, make_config, [])
    ctx, store = session.ctx, session.store
    first = prompt.current(ctx)
    assert prompt.diff_pair(ctx) is None and prompt.diff(None) == ""
    mine = prompt.set_prompt(ctx, text=first.text + "\nAnswer in Japanese (日本語で答える).", why="I read Japanese")
    assert prompt.current(ctx).id == mine.id and mine.author == "user"
    assert "+Answer in Japanese (日本語で答える)." in prompt.diff(prompt.diff_pair(ctx))
    assert prompt.version_dict(store, mine, mine.id)["serving"] is True
    with pytest.raises(Problem, match="no prompt version 42"):
        prompt.version(ctx, 42)
    with pytest.raises(Problem, match="not from evolution"):
        evolution.rollback(ctx, "try")
    undone, back = prompt.rollback(ctx, "too strict", by="(agent tool)")
    assert (undone.id, back.id) == (mine.id, first.id) and prompt.current(ctx).id == first.id
    with pytest.raises(Problem, match="no earlier prompt version"):
        prompt.rollback(ctx, "again")
    agents = prompt.propose(ctx, first.text + "\nBe brief.", "the user asked")
    assert agents.status == "probation" and [v.id for v in prompt.history(store)][-1] == agents.id
    with pytest.raises(Problem, match="prompt not changed"):
        prompt.propose(ctx, "", "empty")
    bred = selfprompt.propose(ctx, first.text + "\nAnswer in one short paragraph.", "evolution", "won run 1")
    undone, back = evolution.rollback(ctx, "rolled back by the user")  # as evolution promotes one, on probation
    assert undone.id == bred.id and back.id == bred.parent
    log = [e["detail"] for e in guard.entries(store, 20)]
    assert f"version {mine.id} set by the user: I read Japanese" in log
    assert f"version {mine.id} rolled back to {first.id} (agent tool): too strict" in log
    assert f"version {agents.id} on probation (agent tool): the user asked" in log
    assert any(line.startswith("prompt change by the agent (empty)") for line in log)
    assert f"version {bred.id} (from evolution) rolled back to {bred.parent} by the user: rolled back by the user" in log


def test_learning_switch_and_tuning_examples(tmp_path, make_config):
    session = session_with(tmp_path, make_config, ["Paris."])
    chat(session, "Capital of France?")
    ctx, store = session.ctx, session.store
    assert "frozen" in learning_actions.switch(ctx, True) and learning_actions.state(ctx, store) == "frozen"
    learning_actions.switch(ctx, False)
    overview = learning_actions.overview(ctx, store, 5)
    assert overview["state"] == "on" and overview["preferences"] == [] and overview["log"]
    with pytest.raises(Problem, match="no standing preference"):
        learning_actions.undo_preference(ctx)
    from_turn = examples.add(ctx, "desirable", turn=examples.latest_turn(store), why="right")
    assert from_turn.messages[0]["role"] == "system" and from_turn.answer == "Paris."
    better = examples.add(ctx, "desirable", turn=1, answer="Paris is the capital.", source="agent")
    assert better.answer == "Paris is the capital." and better.source == "agent"
    by_hand = examples.add(ctx, "undesirable", user="2+2?", answer="5", why="wrong")
    assert examples.get(store, by_hand.id).question == "2+2?"
    assert examples.edit(ctx, by_hand.id, split="eval", why="held out").split == "eval"
    assert [e.id for e in examples.listing(store, label="undesirable")] == [by_hand.id]
    assert sum(examples.counts(store).values()) == len(examples.listing(store))
    records = list(examples.export(store, "sft"))
    assert records and all("messages" in r for r in records)
    examples.remove(ctx, by_hand.id, "a test")
    with pytest.raises(Problem, match=f"no example {by_hand.id}"):
        examples.get(store, by_hand.id)
    with pytest.raises(Problem):
        examples.remove(ctx, by_hand.id)
    with pytest.raises(Problem):
        examples.add(ctx, "desirable", turn=7)
    log = [e["detail"] for e in guard.entries(store, 20)]
    assert f"#{by_hand.id} deleted by the user: a test" in log
    assert f"#{by_hand.id} edited by the user: held out" in log
    assert any(line.startswith(f"#{better.id} desirable added (agent tool) from turn 1") for line in log)


def test_memory_with_real_chroma(tmp_path, make_config):
    session = session_with(tmp_path, make_config, ["- 妹の名前はアイコです"], memory={"enabled": True})
    ctx = session.ctx
    kept, what = memory.add(ctx, "ユーザーの妹の名前はアイコです", importance=1.0, pinned=True)
    assert what == "added" and kept["pinned"] and 0 < kept["strength"] <= 1
    again, what = memory.add(ctx, "ユーザーの妹の名前はアイコです")
    assert what == "merged" and again["id"] == kept["id"]
    other, _ = memory.add(ctx, "The user lives in Osaka", kind="note", importance=0.4)
    found = memory.search(ctx, "妹の名前は？")
    assert found["memories"][0]["id"] == kept["id"]
    assert {m["id"] for m in memory.listing(ctx)} == {kept["id"], other["id"]}
    assert memory.forget(ctx, other["id"])["id"] == other["id"]
    assert [m["id"] for m in memory.listing(ctx)] == [kept["id"]]
    assert {m["status"] for m in memory.listing(ctx, everything=True)} == {"active", "forgotten"}
    with pytest.raises(Problem):
        memory.forget(ctx, "zzzz")
    with pytest.raises(Problem, match="a memory is one of"):
        memory.add(ctx, "x", kind="gossip")
    assert set(memory.consolidate(ctx)) == {"merged", "summaries", "dropped"}


def test_memory_turned_off_is_one_problem(tmp_path, make_config):
    session = session_with(tmp_path, make_config, [])
    for act in (lambda: memory.listing(session.ctx), lambda: memory.add(session.ctx, "x"),
                lambda: memory.search(session.ctx, "x"), lambda: memory.forget(session.ctx, "x")):
        with pytest.raises(Problem, match="long-term memory is turned off"):
            act()


def test_evolution_status_before_any_run(tmp_path, make_config):
    session = session_with(tmp_path, make_config, [])
    assert evolution.status(session.store) == {} and evolution.runs(session.store) == []
    assert evolution.busy(session.store) == ""
    with pytest.raises(Problem, match="no evolution runs yet"):
        evolution.lineage(session.store)
    with pytest.raises(Problem, match="does not exist"):
        evolution.promote(session.ctx, 7)
