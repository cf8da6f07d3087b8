"""Explicit feedback acts at once (graph/learning/feedback.py), through the real graph and session with a
scripted model: English and Japanese cues map to the fixed preferences; the answer to a message
that names one is shaped by it (style, length budget, format instruction); said twice it stands
(one notice line, a rule on probation, listed by `learn`, undone by `learn undo`); "from now on"
makes it stand at once; topic bans ("stop mentioning football", 「サッカーの話はしないで」) stand
with a fixed instruction; a frozen agent counts nothing; the policy gets evidence for the arms the
feedback points at."""

import json

import pytest
from fakes import ScriptedChat, install
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from pydantic import Field
from test_learning_loop import say

from graph.actions import learning as learning_actions
from graph.cli import learning as learncli
from graph.context import Context
from graph.learning import feedback, guard, selfprompt, strategy
from graph.models import prompts
from graph.session import Session


class BudgetChat(ScriptedChat):
    """ScriptedChat that records the length budget and tools of every call, and keeps to the
    budget as a real model does: at most `max_tokens` words, then finish reason "length"."""

    max_tokens: int | None = None
    seen: list = Field(default_factory=list)

    def _stream(self, messages, stop=None, run_manager=None, *, tools=None, **kwargs):
        self.seen.append({"max_tokens": self.max_tokens, "tools": list(tools or [])})
        for n, chunk in enumerate(super()._stream(messages, stop, run_manager, tools=tools, **kwargs)):
            if self.max_tokens and n == self.max_tokens:
                yield ChatGenerationChunk(message=AIMessageChunk(content="", response_metadata={"finish_reason": "length"}))
                return
            yield chunk


def make(tmp_path, make_config, **settings):
    settings.setdefault("memory", {"enabled": False})
    ctx = Context(home=str(tmp_path / "home"), config=str(make_config(settings)), cwd=str(tmp_path))
    model = BudgetChat(replies=[], calls=[])
    install(ctx, model)
    return Session(ctx), model


def sent(model, call: int = -1) -> str:
    """The system text of one answering call: the system prompt and the messages after the user's."""
    messages = [c for c in model.calls if c[0].type == "system"][call]
    last_human = max(i for i, m in enumerate(messages) if m.type == "human")
    return "\n".join(m.text for m in [messages[0], *messages[last_human + 1:]] if m.type == "system")


SHORT, LONG = feedback.PREFERENCES["short"].instruction, feedback.PREFERENCES["long"].instruction


@pytest.mark.parametrize("text, keys", [
    ("Too long, shorter please. What is DNS?", ["short"]), ("長すぎます。次の質問です：光合成とは何ですか？", ["short"]),
    ("もっと短くして", ["short"]), ("Can you make it shorter?", []), ("More detail, please.", ["long"]),
    ("もっと詳しく", ["long"]), ("Use bullet points, please.", ["bullets"]), ("箇条書きでお願い", ["bullets"]),
    ("No markdown please, just plain sentences.", ["plain"]), ("表にして", ["table"]),
    ("Answer in English, please.", ["english"]), ("英語で答えてください。", ["english"]),
    ("日本語で答えて", ["japanese"]), ("関係ない話はしないで", ["on_topic"]), ("Please stay on topic.", ["on_topic"]),
    ("Too long. Use bullet points.", ["short", "bullets"]), ("Shorter. No, more detail.", ["long"]),
    ("Thanks! What is DNS?", []), ("一番長い川はどこ？", []), ("I use vim every day.", [])])
def test_cues_map_to_preferences(text, keys):
    assert feedback.heard(text) == keys


def test_a_new_request_shapes_its_answer_but_is_not_feedback():
    assert feedback.asked("Explain in detail how TCP works") == ["long"]
    assert feedback.heard("Explain in detail how TCP works") == []
    assert feedback.asked("Can you make it shorter?") == ["short"] and feedback.heard("Can you make it shorter?") == []


def test_a_complaint_shapes_the_next_answer_at_once(tmp_path, make_config, monkeypatch):
    monkeypatch.setattr(feedback, "STANDING_AFTER", 2)
    session, model = make(tmp_path, make_config)
    say(session, "What is DNS?", "Too long, shorter please. What is an API?")
    answering = [c for c in model.calls if c[0].type == "system"][-1]
    assert SHORT in answering[0].text  # in the system prompt: a tiny model takes a message after the question for it
    assert prompts.STYLES["concise"] not in sent(model)
    assert model.seen[0]["max_tokens"] is None and model.seen[-1]["max_tokens"] == feedback.PREFERENCES["short"].max_tokens
    say(session, "Use bullet points, please. What is a CPU?")
    assert feedback.PREFERENCES["bullets"].instruction in sent(model)
    assert model.seen[-1]["max_tokens"] == feedback.LIST_TOKENS  # a short list: the 135M model's were 209 tokens
    assert not feedback.standing(session.store)  # said once of two: this answer only


def test_the_answer_forced_after_cut_reasoning_keeps_the_budget(tmp_path, make_config):
    session, model = make(tmp_path, make_config, reasoning={"mode": "on", "max_tokens": 32})  # the user's: it wins
    model.replies = ["<think>" + " ".join(f"step{i}" for i in range(100)), "Eight. " * 100]
    say(session, "Use bullet points, please. What is 3 + 5?")
    assert [seen["max_tokens"] for seen in model.seen] == [feedback.LIST_TOKENS] * 2  # thinking, then the answer


@pytest.mark.parametrize("ask", ["What sports do children play?", "Use bullet points, please. What sports do children play?"])
def test_an_embedded_models_answer_going_round_in_a_loop_is_stopped(tmp_path, make_config, ask):
    session, model = make(tmp_path, make_config)
    install(session.ctx, model, name="embedded")
    loop = "It is also played by adults, and it is also played by children. "
    model.replies = ["Children play many sports. " + loop * 40]
    answer = shown(say(session, ask))
    assert answer.startswith(("Children play many sports.", "- Children play many sports."))
    assert 1 <= answer.count("played by children.") <= 4  # not 40 times: stopped at the third
    assert answer.rstrip().endswith("children.") or not ask.startswith("Use")  # held back: whole sentences
    assert session.store.history()[-1]["meta"]["looped"] is True
    if not ask.startswith("Use"):  # (a list has an 80-token budget)
        code = "```\n" + "x = 1  # the same line again and again, as code may be\n" * 20 + "```"
        model.replies = [code]
        assert shown(say(session, "Thanks! Show me the code.")) == code  # code is left alone


def shown(events) -> str:
    return "".join(v for k, v in events if k == "token")


@pytest.mark.parametrize("reply, kept", [
    (" ".join(f"Plants make sugar {n} times." for n in range(12)), " ".join(f"Plants make sugar {n} times." for n in range(9))),
    ("".join(f"植物は糖を{n}回作ります。 " for n in range(60)), "".join(f"植物は糖を{n}回作ります。 " for n in range(48)).rstrip()),
    (" ".join(f"w{n}" for n in range(60)), " ".join(f"w{n}" for n in range(48))),  # no sentence end: kept, not emptied
    ("It is 3.14 and a bit", "It is 3.14 and a bit")])  # under the budget: the model ended it, nothing is cut
def test_an_answer_the_budget_stops_ends_at_its_last_complete_sentence(tmp_path, make_config, reply, kept):
    session, model = make(tmp_path, make_config)
    say(session, "What is DNS?")
    model.replies = [reply]
    events = say(session, "Too long, shorter please. What is photosynthesis?")
    assert model.seen[-1]["max_tokens"] == feedback.SHORT_TOKENS
    assert shown(events) == kept  # what the user saw
    assert session.store.history()[-1]["content"] == kept  # what was kept


def test_said_twice_it_stands_is_shown_listed_and_undone(tmp_path, make_config, monkeypatch):
    monkeypatch.setattr(feedback, "STANDING_AFTER", 2)
    session, model = make(tmp_path, make_config)
    events = say(session, "What is DNS?", "Too long, shorter please. What is an API?", "Thanks! What is a CPU?")
    assert not [v for k, v in events if k == "status" and v.startswith("noted")]
    events = say(session, "Too long. What is a glacier?")
    notices = [v for k, v in events if k == "status" and v.startswith("noted")]
    assert notices == ["noted: shorter answers from now on (undo: /learn undo)"]
    say(session, "Thanks! What is an atom?")  # no complaint in this message: the standing preference applies
    assert SHORT in sent(model) and model.seen[-1]["max_tokens"]
    version = selfprompt.current(session.ctx)
    assert version.status == "probation" and SHORT in selfprompt.split(version.text)[1]
    listed = learning_actions.summary(session.ctx, session.store)["preferences"]
    assert [p["key"] for p in listed] == ["short"] and listed[0]["how"] == "said 2 times"
    assert "shorter answers" in learning_actions.undo_preference(session.ctx)
    assert not feedback.standing(session.store)
    assert SHORT not in selfprompt.split(selfprompt.current(session.ctx).text)[1]
    say(session, "Thanks! What is a volcano?")
    assert SHORT not in sent(model) and model.seen[-1]["max_tokens"] is None
    with pytest.raises(learning_actions.Problem, match="no standing preference"):
        learning_actions.undo_preference(session.ctx)


def test_from_now_on_stands_at_once_and_undo_takes_the_users_words_out(tmp_path, make_config):
    session, model = make(tmp_path, make_config)
    events = say(session, "What is DNS?", "From now on, use bullet points.")
    assert "noted: bullet points from now on (undo: /learn undo)" in [v for k, v in events if k == "status"]
    words = "From now on, use bullet points."
    assert feedback.standing(session.store)["bullets"]["rule"] == words  # the user's own words are the rule
    assert selfprompt.split(selfprompt.current(session.ctx).text)[1] == [words]
    say(session, "What is a CPU?")
    assert feedback.PREFERENCES["bullets"].instruction in sent(model)
    learning_actions.undo_preference(session.ctx)
    assert words not in selfprompt.current(session.ctx).text


@pytest.mark.parametrize("text, topics", [
    ("Please don't talk about football.", ["football"]), ("Don't mention football, please.", ["football"]),
    ("Stop talking about football.", ["football"]), ("Stop mentioning the weather anymore.", ["the weather"]),
    ("Too long, and never bring up Star Wars again.", ["Star Wars"]), ("Enough about cats!", ["cats"]),
    ("Let's not discuss politics and just answer.", ["politics"]), ("No more talk about taxes.", ["taxes"]),
    ("サッカーの話はしないで", ["サッカー"]), ("もうサッカーの話はやめてください。", ["サッカー"]),
    ("仕事のことは言わないで", ["仕事"]), ("政治に触れないで", ["政治"]), ("私はお金の話はしないでほしい", ["お金"]),
    ("Don't talk about it.", []), ("その話はやめてください。", []), ("I don't talk about football at work.", []),
    ("Don't talk about how you were trained on all that data.", []), ("Talk about football.", []),
    ("関係ない話はしないで", []), ("What is football?", [])])
def test_topic_bans_name_a_short_topic(text, topics):
    assert feedback.topics.banned(text) == topics


def test_a_topic_ban_stands_adds_its_fixed_instruction_is_listed_and_undone(tmp_path, make_config):
    session, model = make(tmp_path, make_config)
    events = say(session, "What is DNS?", "Too long. Stop mentioning football. What is an API?")
    notices = [v for k, v in events if k == "status" and v.startswith("noted")]
    assert "noted: not bringing up football from now on (undo: /learn undo)" in notices
    ban = "Do not bring up football unless the user asks."
    say(session, "Thanks! What is a CPU?")
    assert ban in sent(model) and SHORT in sent(model)  # the ban beside the length preference
    listed = {p["key"]: p for p in learning_actions.summary(session.ctx, session.store)["preferences"]}
    assert listed["topic:football"]["says"] == "not bringing up football"
    assert ban in selfprompt.split(selfprompt.current(session.ctx).text)[1]  # its rule, on probation
    assert feedback.undo(session.ctx, "topic:football") == "undone: not bringing up football (no longer applied)"
    say(session, "Thanks! What is an atom?")
    assert ban not in sent(model) and SHORT in sent(model)
    assert ban not in selfprompt.current(session.ctx).text


def test_japanese_topic_bans_stand_side_by_side(tmp_path, make_config):
    session, model = make(tmp_path, make_config)
    say(session, "光合成とは何ですか？", "サッカーの話はしないで。火山とは何ですか？", "ありがとう。政治に触れないで。")
    assert [k for k in feedback.standing(session.store) if k.startswith(feedback.BAN)] == ["topic:サッカー", "topic:政治"]
    say(session, "素数とは何ですか？")
    assert "Do not bring up サッカー unless the user asks." in sent(model)
    assert "Do not bring up 政治 unless the user asks." in sent(model)


def test_a_rival_said_twice_ends_a_standing_preference(tmp_path, make_config, monkeypatch):
    monkeypatch.setattr(feedback, "STANDING_AFTER", 2)
    session, model = make(tmp_path, make_config)
    say(session, "What is DNS?", "Too long. What is an API?", "Too long. What is a CPU?")
    assert list(feedback.standing(session.store)) == ["short"]
    say(session, "もっと詳しく。火山とは何ですか？")  # once: this answer only
    assert list(feedback.standing(session.store)) == ["short"]
    assert LONG in sent(model)
    say(session, "More detail, please. What is an atom?")
    assert list(feedback.standing(session.store)) == ["long"]
    rules = selfprompt.split(selfprompt.current(session.ctx).text)[1]
    assert LONG in rules and SHORT not in rules  # the replaced preference's rule left the prompt


def test_frozen_learning_counts_nothing_and_shapes_nothing_new(tmp_path, make_config):
    session, model = make(tmp_path, make_config)
    guard.freeze(session.ctx, True)
    say(session, "What is DNS?", "Too long. What is an API?", "Too long. What is a CPU?")
    assert not feedback.standing(session.store)
    assert SHORT not in sent(model) and model.seen[-1]["max_tokens"] is None


def test_feedback_gives_evidence_to_the_arms_that_address_it(tmp_path, make_config):
    session, _ = make(tmp_path, make_config, learning={"policy": True})
    say(session, "What is DNS?", "Too long, shorter please. What is an API?")
    plays = {(r["factor"], r["arm"]): r for r in strategy.table(session.store)}
    assert plays[("style", "concise")]["mean"] > 0 > plays[("style", "detailed")]["mean"]
    assert plays[("think", "off")]["mean"] > 0 > plays[("think", "on")]["mean"]


@pytest.mark.parametrize("said", ["Use bullet points, please. What is an API?", "英語で答えてください。光合成とは何ですか？",
                                  "Thanks! Stop mentioning football. What is an API?"])
def test_named_feedback_is_a_complaint_about_the_answer(tmp_path, make_config, said):
    from graph.learning import reward

    session, _ = make(tmp_path, make_config)
    say(session, "What is DNS?", said)
    components = reward.get(session.store, 1).components
    assert components["complaint"] == reward.WEIGHTS["complaint"] and "followed_up" not in components


def test_by_default_one_complaint_stands(tmp_path, make_config):
    session, model = make(tmp_path, make_config)
    events = say(session, "What is DNS?", "Too long. What is an API?")
    assert "noted: shorter answers from now on (undo: /learn undo)" in [v for k, v in events if k == "status"]
    say(session, "Thanks! What is a CPU?")
    assert SHORT in sent(model)


def test_learn_lists_preferences_and_extra_calls(tmp_path, make_config):
    session, _ = make(tmp_path, make_config)
    say(session, "What is DNS?", "Too long. What is an API?", "Too long. What is a CPU?")
    info = learning_actions.summary(session.ctx, session.store)
    assert info["extra_calls"]["turns"] == 3 and info["extra_calls"]["calls"] == 0
    assert "shorter answers since turn" in str(learncli.preferences_text(info["preferences"]))
    json.dumps(info)  # `learn --json` prints it


BULLETS = feedback.PREFERENCES["bullets"].instruction


@pytest.mark.parametrize("said, reply, kept", [
    ("Use bullet points, please.", "An API is a contract. Programs call it!\n```\nx = 1. y = 2.\n```",
     "- An API is a contract.\n- Programs call it!\n```\nx = 1. y = 2.\n```"),
    ("箇条書きでお願い。", "火山は山です。マグマが出ます！\n- 溶岩", "- 火山は山です。\n- マグマが出ます！\n- 溶岩"),
    ("No markdown please, just plain sentences.", "## CPU\n**A CPU** runs code.\n1. Fetch\n2. Run",
     "CPU\nA CPU runs code.\nFetch\nRun")])
def test_a_format_preference_shapes_any_models_answer_until_undone(tmp_path, make_config, said, reply, kept):
    session, model = make(tmp_path, make_config)
    say(session, "What is DNS?", f"{said} What is an API?")
    model.replies = [reply]
    events = say(session, "Thanks! What is a CPU?")  # the model ignored the instruction: the text is shaped
    assert shown(events) == kept == session.store.history()[-1]["content"]
    feedback.undo(session.ctx)
    model.replies = [reply]
    assert shown(say(session, "Thanks! What is a volcano?")) == reply


def test_standing_preferences_come_after_the_rules_the_agent_writes(tmp_path, make_config):
    session, model = make(tmp_path, make_config)
    say(session, "What is DNS?", "Use bullet points, please. What is an API?")  # its rule, on probation
    base, rules = selfprompt.split(selfprompt.current(session.ctx).text)
    assert rules == [BULLETS]
    own = "Always give detailed paragraphs, never lists."  # a later self-rewrite that would override it
    selfprompt.propose(session.ctx, selfprompt.compose(base, [BULLETS, own]), "agent", "a later self-rewrite")
    say(session, "Thanks! What is a CPU?", "Answer in English, please. What is a haiku?")
    system = [c for c in model.calls if c[0].type == "system"][-1][0].text
    english = feedback.PREFERENCES["english"].instruction
    assert system.index(own) < system.index(BULLETS) < system.index(english)  # the user's, in the order said
    assert selfprompt.split(selfprompt.current(session.ctx).text)[1] == [BULLETS, own, english]  # as proposed


@pytest.mark.parametrize("backend, frozen, hidden", [
    ("embedded", False, True), ("ollama", False, False), ("embedded", True, False)])
def test_the_embedded_model_is_not_shown_answers_the_user_complained_about(tmp_path, make_config, backend,
                                                                           frozen, hidden):
    session, model = make(tmp_path, make_config, llm={"embedded": {"history_turns": 5}})  # shown: all but those
    install(session.ctx, model, name=backend)
    guard.freeze(session.ctx, frozen)
    asked = ["What is DNS?", "That's wrong. What is an API?", "Thanks! What is a CPU?"]
    model.replies = ["Step 1: DNS is a phone book.", "APIs connect programs.", "ok"]
    say(session, *asked)
    window = [m.text for m in [c for c in model.calls if c[0].type == "system"][-1]]
    assert ("Step 1: DNS is a phone book." not in window) is hidden  # the whole exchange: a question
    assert ("What is DNS?" not in window) is hidden  # left without its answer derails SmolLM2
    assert "APIs connect programs." in window and "Thanks! What is a CPU?" in window
    assert ("What is an API?" in window) is hidden  # the complaint before the question goes with it,
    assert (asked[1] in window) is not hidden  # for the agent acts on it (feedback.request)
    kept = [m.text for m in session.messages()]  # the checkpoint keeps all of it
    assert "Step 1: DNS is a phone book." in kept and "What is DNS?" in kept
    assert "Step 1: DNS is a phone book." in [r["content"] for r in session.store.history()]  # and the transcript


@pytest.mark.parametrize("rating, hidden", [("bad", True), (1, True), (2, True), (3, False), ("good", False)])
def test_an_answer_rated_bad_is_not_shown_to_the_embedded_model(tmp_path, make_config, rating, hidden):
    from graph.learning import rating as rewards

    session, model = make(tmp_path, make_config, llm={"embedded": {"history_turns": 5}})
    install(session.ctx, model, name="embedded")
    model.replies = ["Step 1: DNS is a phone book.", "APIs connect programs.", "ok"]
    say(session, "What is DNS?")
    rewards.rate(session.ctx, "rating" if isinstance(rating, int) else rating, rating if isinstance(rating, int) else None)
    say(session, "What is an API?", "What is a CPU?")  # no complaint in the words: the rating alone
    window = [m.text for m in [c for c in model.calls if c[0].type == "system"][-1]]
    assert ("Step 1: DNS is a phone book." not in window) is hidden and ("What is DNS?" not in window) is hidden
    assert "APIs connect programs." in window and "What is an API?" in window
    if hidden:  # re-rated good: shown again
        rewards.rate(session.ctx, "good", turn=1)
        say(session, "What is a haiku?")
        assert "Step 1: DNS is a phone book." in [m.text for m in [c for c in model.calls if c[0].type == "system"][-1]]


@pytest.mark.parametrize("text, asks", [
    ("Too long, shorter please. What is DNS?", "What is DNS?"),
    ("Please don't talk about football. What sports are popular in Brazil?", "What sports are popular in Brazil?"),
    ("長すぎます。短くして。光合成とは何ですか？", "光合成とは何ですか？"), ("That's wrong. What is an API?", "What is an API?"),
    ("Thanks! What is DNS?", "Thanks! What is DNS?"), ("Too long.", "Too long."),  # no feedback before / no request
    ("Tell me about sports, but don't mention football.", "Tell me about sports, but don't mention football."),
    ("What is DNS? Too long answers are bad.", "What is DNS? Too long answers are bad.")])
def test_the_request_is_the_message_without_the_feedback_before_it(text, asks):
    assert feedback.request(text) == asks


def test_the_embedded_model_sees_the_request_without_the_feedback_before_it(tmp_path, make_config):
    session, model = make(tmp_path, make_config)
    install(session.ctx, model, name="embedded")
    model.replies = ["Football is popular.", "A stadium is a venue.", "ok"]
    say(session, "What sports are popular in Brazil?", "Please don't talk about football. What is a stadium?",
        "Thanks! What is a referee?")
    windows = [[m.text for m in call] for call in model.calls if call[0].type == "system"]
    assert "What is a stadium?" in windows[1] and not any("football" in text for text in windows[1][1:])
    assert "What is a stadium?" in windows[2] and "Thanks! What is a referee?" in windows[2]
    assert "Please don't talk about football. What is a stadium?" in [m.text for m in session.messages()]  # kept


def test_a_topic_ban_leaves_the_topic_out_unless_the_user_asks_about_it(tmp_path, make_config):
    session, model = make(tmp_path, make_config)
    say(session, "What sports are popular in Brazil?", "Please don't talk about football. What is a stadium?")
    reply = "A stadium is a big venue. Football is played there. Concerts too!"
    model.replies = [reply]
    events = say(session, "Thanks! What is a referee?")
    assert shown(events) == "A stadium is a big venue. Concerts too!" == session.store.history()[-1]["content"]
    model.replies = [reply]  # the message that bans it is not one that asks about it
    assert shown(say(session, "Stop mentioning soccer. What is a stadium?")) == "A stadium is a big venue. Concerts too!"
    model.replies = [reply]
    assert shown(say(session, "What are the rules of football?")) == reply  # asked: "unless the user asks"
