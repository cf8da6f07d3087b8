"""The engagement reward: cues in the user's next action (English and Japanese; a complaint about
the answer vs a new request that asks for a style), re-asking vs following up vs changing the
subject, silence, failed tools and stopped answers, explicit ratings that override the implicit
cues, clipping to [-1, 1], and, through the real graph with a scripted model, that a longer
answer never earns more than a shorter one for the same reaction."""

import inspect
import time

import pytest
from hypothesis import given, settings, strategies as st

from fakes import ScriptedChat, install
from graph.context import Context
from graph.learning import reward
from graph.learning.rating import rate
from graph.session import Session
from graph.store import Store

SILENCE = 30 * 60.0
QUESTION = "What is the capital of France?"


def cues(message, previous="Tell me about something", gap=None):
    return reward.next_action(previous, message, gap, SILENCE)


# ------------------------------------------------------------------ cues, English and Japanese


@pytest.mark.parametrize("message", [
    "Thanks!", "Thank you, that helps.", "Perfect, exactly what I needed", "That works now", "Great answer",
    "ありがとう！", "ありがとうございます、助かりました", "完璧です", "なるほど、分かりやすい", "動きました！"])
def test_praise(message):
    assert cues(message) == {"praise": reward.WEIGHTS["praise"]}


@pytest.mark.parametrize("message", [
    "That's wrong.", "No, Lyon is not the capital", "This is incorrect", "That's not what I asked",
    "It doesn't work", "違います", "それは間違いです", "そうじゃなくて", "動かないよ", "意味不明",
    "That doesn't answer my question.", "You did not answer the question", "答えになっていません", "質問に答えてください"])
def test_correction(message):
    assert cues(message)["correction"] == reward.WEIGHTS["correction"]
    assert "praise" not in cues(message) and "followed_up" not in cues(message)


@pytest.mark.parametrize("message", [
    "too long", "Shorter please", "That is hard to read", "confusing", "長すぎる", "もっと簡潔に", "わかりにくい",
    "That's too verbose", "Your answer is too long.", "Can you make it shorter?", "Can you go into more detail?",
    "Thanks, but can you make it shorter?", "That was too long, I only needed the gist.", "Too long. What is DNS?",
    "もっと短く", "その回答は長すぎます", "説明が長い", "もっと詳しく説明してください", "長すぎます。次の質問です：俳句とは？",
    "stop talking about football", "I don't want to hear about football", "Please don't mention football.",
    "サッカーの話はやめて", "その話はもういい"])
def test_complaint(message):
    found = cues(message)
    assert found["complaint"] == reward.WEIGHTS["complaint"] and "correction" not in found and "praise" not in found


@pytest.mark.parametrize("message", [
    "Explain in detail how TCP works", "Give me a short summary of the French Revolution", "Describe DNS in detail.",
    "Why is my build taking too long?", "Be brief: what is a haiku?", "Explain recursion. Keep it short.",
    "短く教えて：日本の首都は？", "詳しく教えて：TCPの仕組み", "TCPについて詳しく教えて", "量子コンピュータを簡潔に説明して",
    "長い文章を要約するコツは？"])
def test_a_new_request_that_asks_for_a_style_is_no_complaint(message):
    assert "complaint" not in cues(message)


def test_a_correction_with_thanks_is_not_praise():
    found = cues("Thanks, but that's wrong")
    assert found == {"correction": reward.WEIGHTS["correction"]}
    assert reward.combine(found) < 0


@pytest.mark.parametrize("message, key", [
    ("👍", "thumbs_up"), ("great 🙏", "thumbs_up"), ("🎉🎉", "thumbs_up"), ("😊", "thumbs_up"),
    ("👎", "thumbs_down"), ("😡", "thumbs_down"), ("👍👎", "thumbs_down")])  # mixed thumbs: the down one counts
def test_thumbs_emoji_are_explicit(message, key):
    found = cues(message)
    assert found[key] == reward.EXPLICIT[key]
    assert reward.combine(found) == reward.EXPLICIT[key]


def test_no_signal_is_zero():
    found = cues("ok", previous=QUESTION)
    assert found == {} and reward.combine(found) == 0.0


# ------------------------------------------------------------------ re-asking, following up, changing the subject


@pytest.mark.parametrize("again", [
    "What is the capital of France?", "what's the capital of France again?", "The capital of France?"])
def test_asking_the_same_thing_again_is_a_reask(again):
    assert cues(again, previous=QUESTION) == {"reasked": reward.WEIGHTS["reasked"]}


@pytest.mark.parametrize("previous, again", [
    ("How do I reverse a list in Python?", "How can I reverse a Python list?"),
    ("Pythonとは何ですか？", "Pythonとは何ですか"),
    ("東京タワーの高さは？", "東京タワーの高さは何メートル？"),
    ("What is DNS?", "Let me ask again: what is DNS?"),  # words about asking are not the question's terms
    ("日本の首都は？", "もう一度聞きます：日本の首都は？"),
    ("東京タワーの高さは？", "改めて：東京タワーの高さは？")])
def test_rephrased_reask(previous, again):
    assert "reasked" in cues(again, previous=previous)


@pytest.mark.parametrize("previous, follow", [
    (QUESTION, "And what about the capital of Germany?"),
    ("How do I sort a list in Python?", "How do I reverse a list in Python?"),
    ("東京の天気は？", "大阪の天気は？"),
    ("機械学習とは何ですか？", "深層学習との違いは？")])
def test_following_up_on_the_topic(previous, follow):
    assert cues(follow, previous=previous) == {"followed_up": reward.WEIGHTS["followed_up"]}


@pytest.mark.parametrize("previous, other", [
    (QUESTION, "Tell me a joke about cats"),
    (QUESTION, "How many people live there?"),  # a follow-up in meaning with no shared term: no signal, not a re-ask
    ("What is Python?", "Thanks, that helps!"),  # praise only: sharing function words is not following up
    ("What is HTTP?", "Thanks! Next: what is DNS?"),  # the same sentence frame, another question
    ("東京の天気は？", "猫の写真を見せて"),
    ("東京の天気は何ですか？", "猫の写真は何ですか？")])  # same sentence frame, different subject
def test_an_unrelated_message_is_neither(previous, other):
    found = cues(other, previous=previous)
    assert "reasked" not in found and "followed_up" not in found


def test_similarity_bounds_and_symmetry():
    assert reward.similarity(QUESTION, QUESTION) == 1.0
    assert reward.similarity("", QUESTION) == 0.0
    a, b = "How do I sort a list in Python?", "How do I reverse a list in Python?"
    assert reward.similarity(a, b) == reward.similarity(b, a)
    assert reward.FOLLOWED_AT <= reward.similarity(a, b) < reward.REASKED_AT


# ------------------------------------------------------------------ silence, failed tools, stopping


def test_silence_after_the_gap():
    assert cues("ok", gap=SILENCE + 1) == {"silence": reward.WEIGHTS["silence"]}
    assert cues("ok", gap=SILENCE - 1) == {}
    assert cues("ok", gap=None) == {}
    assert reward.next_action("a", "ok", 10 ** 6, 0) == {}  # silence_minutes 0 turns the cue off


def test_tool_errors_and_stopping():
    assert reward.of_turn(0, False) == {}
    assert reward.of_turn(1, False) == {"tool_errors": pytest.approx(-0.2)}
    assert reward.of_turn(10, False) == {"tool_errors": pytest.approx(-0.6)}  # at most three count
    assert reward.of_turn(0, True) == {"stopped": reward.WEIGHTS["stopped"]}
    assert reward.combine(reward.of_turn(2, True)) == pytest.approx(-0.9)


# ------------------------------------------------------------------ combining, explicit ratings


def test_combine_adds_and_clips():
    assert reward.combine({"praise": 0.6, "followed_up": 0.2}) == pytest.approx(0.8)
    assert reward.combine({"correction": -0.6, "reasked": -0.5, "tool_errors": -0.6}) == -1.0
    assert reward.combine({"praise": 0.6, "followed_up": 0.2, "x": 0.9}) == 1.0
    assert reward.combine({}) == 0.0


def test_an_explicit_rating_decides_alone_and_the_latest_wins():
    assert reward.combine({"correction": -0.6, "reasked": -0.5, "good": 1.0}) == 1.0
    assert reward.combine({"praise": 0.6, "bad": -1.0}) == -1.0
    assert reward.combine({"good": 1.0, "rating": reward.rating(2)}) == -0.5
    assert reward.combine({"thumbs_down": -1.0, "good": 1.0}) == 1.0


@pytest.mark.parametrize("stars, value", [(1, -1.0), (2, -0.5), (3, 0.0), (4, 0.5), (5, 1.0)])
def test_star_ratings(stars, value):
    assert reward.rating(stars) == value


@pytest.mark.parametrize("stars", [0, 6, -1, 10])
def test_an_invalid_star_count_is_refused(stars):
    with pytest.raises(ValueError, match="1 to 5"):
        reward.rating(stars)


@given(st.text(max_size=80), st.text(max_size=80), st.one_of(st.none(), st.floats(0, 10 ** 6)))
@settings(max_examples=300, deadline=None)
def test_any_reaction_gives_a_reward_in_range(previous, message, gap):
    found = reward.next_action(previous, message, gap, SILENCE)
    assert set(found) <= set(reward.WEIGHTS) | set(reward.EXPLICIT)
    assert -1.0 <= reward.combine(found) <= 1.0
    assert 0.0 <= reward.similarity(previous, message) <= 1.0


def test_the_reward_never_reads_the_answer():
    """By construction: the reaction, the question and the gap; the answer is not an argument."""
    assert list(inspect.signature(reward.next_action).parameters) == ["previous", "message", "gap_s", "silence_s"]
    assert list(inspect.signature(reward.of_turn).parameters) == ["tool_errors", "stopped"]


# ------------------------------------------------------------------ the rewards table and explicit feedback


def test_rewards_table_round_trip(tmp_path):
    store = Store(tmp_path / "home")
    saved = reward.save(store, reward.Reward(7, components={"praise": 0.6, "followed_up": 0.2}, bucket="en-simple",
                                             arms={"style": "concise"}, prompt_version=3, tainted=True))
    assert saved.reward == pytest.approx(0.8)
    got = reward.get(store, 7)
    assert got.components == {"praise": 0.6, "followed_up": 0.2} and got.settled is None and got.tainted
    assert got.arms == {"style": "concise"} and got.bucket == "en-simple" and got.prompt_version == 3
    assert reward.recent(store, 5) == []  # not settled yet
    got.settled = time.time()
    got.components["reasked"] = -0.5
    reward.save(store, got)
    [again] = reward.recent(store, 5)
    assert again.reward == pytest.approx(0.3) and reward.of_prompt(store, 3) == [pytest.approx(0.3)]
    assert reward.mean([]) is None and reward.mean([1.0, 0.0]) == 0.5


# ------------------------------------------------------------------ through the graph


def session(tmp_path, make_config, replies, name="config.yaml", **settings):
    settings.setdefault("memory", {"enabled": False})
    ctx = Context(home=str(tmp_path / name.split(".")[0] / "home"), config=str(make_config(settings, name=name)),
                  cwd=str(tmp_path))
    model = ScriptedChat(replies=list(replies))
    install(ctx, model)
    return Session(ctx), model


def turns(s, *texts):
    for text in texts:
        list(s.turn(text))


def test_every_component_is_stored_with_the_turn(tmp_path, make_config):
    s, _ = session(tmp_path, make_config, [
        {"tool": "no_such_tool", "args": {}}, {"tool": "read_file", "args": {"path": "missing.txt"}},
        "Paris.", "Berlin.", "You're welcome."])
    turns(s, QUESTION, "And what about the capital of Germany?", "Thanks, perfect!")
    first, second, third = reward.recent(s.store, 3, settled_only=False)
    assert first.components == {"tool_errors": pytest.approx(-0.4), "followed_up": 0.2}
    assert first.reward == pytest.approx(-0.2) and first.settled
    assert second.components == {"praise": 0.6} and second.reward == pytest.approx(0.6)
    assert third.settled is None  # waits for the user's next action
    assert all(r.prompt_version == 1 and r.bucket == "en-simple" and r.arms for r in (first, second, third))


def test_a_stopped_answer_is_penalised(tmp_path, make_config):
    s, model = session(tmp_path, make_config, ["one two three four five six"])
    model.stop_after = 2
    turns(s, "Count to six")
    model.stop_after = None
    assert reward.get(s.store, 1).components == {"stopped": reward.WEIGHTS["stopped"]}


def test_silence_through_the_graph(tmp_path, make_config):
    s, _ = session(tmp_path, make_config, ["Paris.", "ok"], learning={"silence_minutes": 1})
    turns(s, QUESTION)
    with s.store.write() as db:  # the answer came two minutes ago
        db.execute("UPDATE turns SET started=started-120, ended=ended-120 WHERE turn=1")
    turns(s, "Tell me a joke about cats")
    assert reward.get(s.store, 1).components == {"silence": reward.WEIGHTS["silence"]}


def test_explicit_feedback_overrides_and_the_latest_rating_wins(tmp_path, make_config):
    s, _ = session(tmp_path, make_config, ["Lyon.", "Paris."])
    turns(s, QUESTION, "That's wrong, try again")
    assert reward.get(s.store, 1).reward == pytest.approx(-0.6)
    assert rate(s.ctx, "good", turn=1).reward == 1.0  # /good beats the correction
    assert reward.get(s.store, 1).components["correction"] == -0.6  # kept, so it can be explained
    assert rate(s.ctx, "rating", stars=2, turn=1).reward == -0.5
    assert rate(s.ctx, "bad", turn=1).reward == -1.0
    latest = rate(s.ctx, "rating", stars=5)  # the latest answer by default
    assert latest.turn == 2 and latest.reward == 1.0 and latest.settled
    with pytest.raises(ValueError, match="1 to 5"):
        rate(s.ctx, "rating", stars=6)
    with pytest.raises(ValueError):
        rate(s.ctx, "good", turn=99)


def test_rating_before_any_answer(tmp_path, make_config):
    s, _ = session(tmp_path, make_config, [])
    with pytest.raises(ValueError, match="no answer to rate"):
        rate(s.ctx, "good")


@pytest.mark.parametrize("request_", ["Explain in detail how TCP works", "短く教えて：日本の首都は？"])
def test_a_good_answer_is_not_penalised_by_the_next_request(tmp_path, make_config, request_):
    s, _ = session(tmp_path, make_config, ["Paris.", "ok"])
    turns(s, QUESTION, request_)
    assert reward.get(s.store, 1).components == {} and reward.get(s.store, 1).reward == 0.0


def test_thumbs_in_the_next_message_settle_the_reward(tmp_path, make_config):
    s, _ = session(tmp_path, make_config, ["Paris.", ":)"])
    turns(s, QUESTION, "👍")
    assert reward.get(s.store, 1).reward == 1.0


CONCISE = "Paris."
VERBOSE = ("The capital of France is Paris, a city on the Seine that has been the seat of the French government "
           "for centuries, home to the Louvre, the Eiffel Tower, Notre-Dame and countless cafés, and the largest city "
           "in the country by population, with a metropolitan area of over twelve million people.") * 3


@pytest.mark.parametrize("reaction", [
    "Thanks, perfect!", "That's wrong.", "What is the capital of France?", "And the capital of Germany?",
    "ありがとう", "👍", "ok"])
def test_a_verbose_answer_earns_no_more_than_a_concise_one(tmp_path, make_config, reaction):
    """Two separate data folders; the same question and the same reaction; one answer ten times longer."""
    assert len(VERBOSE) >= 10 * len(CONCISE)
    short, _ = session(tmp_path, make_config, [CONCISE, "ok"], name="short.yaml")
    long, _ = session(tmp_path, make_config, [VERBOSE, "ok"], name="long.yaml")
    turns(short, QUESTION, reaction)
    turns(long, QUESTION, reaction)
    assert short.store.history()[1]["content"] == CONCISE and long.store.history()[1]["content"] == VERBOSE
    a, b = reward.get(short.store, 1), reward.get(long.store, 1)
    assert a.settled and b.settled
    assert a.components == b.components and a.reward == b.reward


@pytest.mark.parametrize("words", [1, 30, 300])
def test_the_same_reward_for_any_answer_length(tmp_path, make_config, words):
    s, _ = session(tmp_path, make_config, [" ".join(["word"] * words), "ok"])
    turns(s, QUESTION, "Thanks, but what about the capital of Germany?")
    assert reward.get(s.store, 1).components == {"praise": 0.6, "followed_up": 0.2}
