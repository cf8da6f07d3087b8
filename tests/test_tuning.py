"""The agent's own tuning data: examples made from real transcripts (a scripted model through
the real graph), the stable train/eval split, one example per turn and label (re-labelling a
turn's answer replaces the other label), editing and removing, and export in TRL's
conversational formats (sft, kto, dpo: pairs only for the same or a re-asked question, never
an answer with itself), Japanese kept as is."""

import json

import pytest

from fakes import ScriptedChat, install
from graph.context import Context
from graph.learning import reward, tuning
from graph.learning.rating import rate
from graph.session import Session
from graph.store import Store


def chat(question: str, answer: str, system: str = "") -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}, {"role": "assistant", "content": answer}]


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "home")


def session(tmp_path, make_config, replies):
    ctx = Context(home=str(tmp_path / "home"), cwd=str(tmp_path),
                  config=str(make_config({"memory": {"enabled": False}})))
    model = ScriptedChat(replies=list(replies))
    install(ctx, model)
    return Session(ctx)


# ------------------------------------------------------------------ from the transcript


def test_from_turn_on_a_real_transcript(tmp_path, make_config):
    s = session(tmp_path, make_config, [
        {"tool": "current_time", "args": {}}, "It is noon.", "東京は日本の首都です。"])
    list(s.turn("What time is it?"))
    list(s.turn("日本の首都はどこですか？"))
    assert tuning.from_turn(s.store, 1) == chat("What time is it?", "It is noon.")  # tool steps left out
    assert tuning.from_turn(s.store, 2, system="Be kind.") == chat("日本の首都はどこですか？", "東京は日本の首都です。",
                                                                   system="Be kind.")


def test_from_turn_without_an_answer(tmp_path, make_config):
    s = session(tmp_path, make_config, [""])
    list(s.turn("Say nothing"))
    with pytest.raises(ValueError, match="turn 1 has no user message and answer"):
        tuning.from_turn(s.store, 1)
    with pytest.raises(ValueError, match="turn 9"):
        tuning.from_turn(s.store, 9)


def test_from_turn_leaves_out_a_sub_agents_messages(tmp_path, make_config):
    s = session(tmp_path, make_config, [
        {"tool": "delegate", "args": {"task": "Find the answer to the question"}}, "The sub-agent's report.",
        "The final answer."])
    list(s.turn("Please delegate this question"))
    rows = s.store.history_of(1)
    assert any(r["meta"].get("agent") for r in rows)  # the sub-agent's answer is in the turn
    assert tuning.from_turn(s.store, 1) == chat("Please delegate this question", "The final answer.")


# ------------------------------------------------------------------ adding, the split, editing


def test_add_and_update_instead_of_duplicating(store):
    first = tuning.add(store, chat("What is 2+2?", "5"), "undesirable", "auto", "reward -0.60", value=-0.6, turn=4)
    again = tuning.add(store, chat("What is 2+2?", "Five"), "undesirable", "user", "the user said so", turn=4)
    assert again.id == first.id and again.source == "user" and again.answer == "Five" and again.reward is None
    other = tuning.add(store, chat("What is 2+2?", "4"), "desirable", "user", "", turn=4)  # the other label
    loose = [tuning.add(store, chat("Hi", "Hello"), "desirable", "agent") for _ in range(2)]  # no turn: two rows
    assert other.id != first.id and loose[0].id != loose[1].id
    assert len(tuning.listing(store)) == 4
    assert [e.id for e in tuning.listing(store)] == sorted((e.id for e in tuning.listing(store)), reverse=True)
    assert [e.id for e in tuning.listing(store, label="undesirable")] == [first.id]
    assert len(tuning.listing(store, source="agent")) == 2 and len(tuning.listing(store, limit=1)) == 1
    assert sum(tuning.counts(store).values()) == 4


@pytest.mark.parametrize("messages, label, why", [
    (chat("q", "a"), "great", "label must be"),
    ([{"role": "user", "content": "q"}], "desirable", "end with the assistant"),
    (chat("q", "   "), "desirable", "end with the assistant"),
    ([{"role": "assistant", "content": "a"}], "desirable", "needs the user"),
    ([{"role": "tool", "content": "x"}, *chat("q", "a")], "desirable", "each message needs a role"),
    ([{"role": "user", "content": ["q"]}, {"role": "assistant", "content": "a"}], "desirable", "each message"),
    ([], "desirable", "end with the assistant"),
])
def test_add_checks_the_example(store, messages, label, why):
    with pytest.raises(ValueError, match=why):
        tuning.add(store, messages, label, "user")
    assert tuning.listing(store) == []


def test_the_split_is_stable_and_follows_the_share(store):
    many = [chat(f"Question number {i}?", f"Answer {i}.") for i in range(400)]
    first = [tuning.split_for(m, 0.2) for m in many]
    assert first == [tuning.split_for(m, 0.2) for m in many]  # the same example, the same side, every time
    assert 40 <= first.count("eval") <= 120
    assert {tuning.split_for(m, 0.0) for m in many} == {"train"}
    assert first.count("eval") <= [tuning.split_for(m, 0.5) for m in many].count("eval")
    added = tuning.add(store, many[0], "desirable", "user", eval_share=0.2)
    assert added.split == first[0]


def test_edit_and_remove(store):
    e = tuning.add(store, chat("What is 2+2?", "5"), "undesirable", "auto", "wrong sum", turn=1)
    edited = tuning.edit(store, e.id, label="desirable", answer="4", why="fixed by the user")
    assert (edited.label, edited.answer, edited.why, edited.split) == ("desirable", "4", "fixed by the user", e.split)
    assert edited.question == "What is 2+2?" and edited.updated >= e.updated
    moved = tuning.edit(store, e.id, split="eval" if e.split == "train" else "train")
    assert moved.split != e.split and moved.why == "fixed by the user"  # untouched fields stay
    with pytest.raises(ValueError, match="no example 99"):
        tuning.edit(store, 99, label="desirable")
    with pytest.raises(ValueError, match="label must be"):
        tuning.edit(store, e.id, label="meh")
    with pytest.raises(ValueError, match="split must be train or eval"):
        tuning.edit(store, e.id, split="test")
    with pytest.raises(ValueError, match="end with the assistant"):
        tuning.edit(store, e.id, answer="  ")
    assert tuning.get(store, e.id).answer == "4"  # failed edits changed nothing
    assert tuning.remove(store, e.id).id == e.id and tuning.get(store, e.id) is None
    with pytest.raises(ValueError, match=f"no example {e.id}"):
        tuning.remove(store, e.id)


# ------------------------------------------------------------------ export


def test_export_formats(store):
    system = "You are a helpful assistant."
    tuning.add(store, chat("What is the capital of France?", "Paris.", system), "desirable", "auto", turn=1)
    tuning.add(store, chat("What is the capital of France?", "Lyon.", system), "undesirable", "auto", turn=2)
    tuning.add(store, chat("Tell me a joke about cats", "No."), "undesirable", "user", turn=3)
    tuning.add(store, chat("日本の首都はどこですか？", "東京です。"), "desirable", "user", turn=4)

    sft = list(tuning.export(store, "sft"))
    assert sft == [{"messages": chat("What is the capital of France?", "Paris.", system)},
                   {"messages": chat("日本の首都はどこですか？", "東京です。")}]  # desirable only, oldest first

    kto = list(tuning.export(store, "kto"))
    assert [r["label"] for r in kto] == [True, False, False, True]
    assert kto[1] == {"prompt": [{"role": "system", "content": system},
                                 {"role": "user", "content": "What is the capital of France?"}],
                      "completion": [{"role": "assistant", "content": "Lyon."}], "label": False}
    assert all(r["completion"][0]["role"] == "assistant" and r["prompt"][-1]["role"] == "user" for r in kto)

    dpo = list(tuning.export(store, "dpo"))
    assert dpo == [{"prompt": [{"role": "system", "content": system},
                               {"role": "user", "content": "What is the capital of France?"}],
                    "chosen": [{"role": "assistant", "content": "Paris."}],
                    "rejected": [{"role": "assistant", "content": "Lyon."}]}]  # the joke has no good answer to pair


def dpo_pairs(store):
    return [(p["prompt"][-1]["content"], p["chosen"][0]["content"], p["rejected"][0]["content"])
            for p in tuning.export(store, "dpo")]


def test_dpo_pairs_the_same_question_not_questions_that_share_words(store):
    tuning.add(store, chat("What is the capital of France?", "Paris."), "desirable", "user")
    tuning.add(store, chat("What is the capital of Japan?", "Kyoto."), "undesirable", "auto")  # another question
    tuning.add(store, chat("How do I sort a dictionary by value in Python?", "sorted(d, key=d.get)"), "desirable",
               "user")
    tuning.add(store, chat("How do I sort a dictionary by key in Python?", "You cannot."), "undesirable", "auto")
    tuning.add(store, chat("Pythonでリストを昇順に並べ替えるには？", "sorted(xs)です。"), "desirable", "user")
    tuning.add(store, chat("Pythonでリストを降順に並べ替えるには？", "できません。"), "undesirable", "auto")
    assert dpo_pairs(store) == []  # most of their words are shared: still other questions
    tuning.add(store, chat("what is the capital of  FRANCE", "Lyon."), "undesirable", "auto")  # case, spaces, "?"
    tuning.add(store, chat("東京タワーの高さは？", "333メートルです。"), "desirable", "user")
    tuning.add(store, chat("東京タワーの高さは?", "わかりません。"), "undesirable", "auto")  # half-width "?"
    assert dpo_pairs(store) == [("what is the capital of  FRANCE", "Paris.", "Lyon."),
                                ("東京タワーの高さは?", "333メートルです。", "わかりません。")]


def test_dpo_pairs_a_turn_the_user_reasked(tmp_path, make_config):
    """Through the graph: a bad answer, the question re-asked in other words, a good answer."""
    s = session(tmp_path, make_config, ["You cannot.", "Use reversed(xs) or xs[::-1].", "You're welcome.",
                                        "Paris.", "ok"])
    for said in ("How do I reverse a list in Python?", "How can I reverse a Python list?", "Thanks, perfect!",
                 "What is the capital of Japan?", "ok"):
        list(s.turn(said))
    assert "reasked" in reward.get(s.store, 1).components
    assert [(e.turn, e.label) for e in tuning.listing(s.store)] == [(2, "desirable"), (1, "undesirable")]
    assert dpo_pairs(s.store) == [("How do I reverse a list in Python?", "Use reversed(xs) or xs[::-1].",
                                   "You cannot.")]


def test_relabelling_a_turn_replaces_the_other_label(tmp_path, make_config):
    """Auto-kept as desirable after thanks, then /bad: one example, undesirable, and no DPO pair of
    the answer with itself."""
    s = session(tmp_path, make_config, ["Paris.", "You're welcome."])
    list(s.turn("What is the capital of France?"))
    list(s.turn("Thanks, perfect!"))
    assert [(e.turn, e.label) for e in tuning.listing(s.store)] == [(1, "desirable")]
    rate(s.ctx, "bad", turn=1)
    assert [(e.turn, e.label, e.answer) for e in tuning.listing(s.store)] == [(1, "undesirable", "Paris.")]
    assert dpo_pairs(s.store) == []
    rate(s.ctx, "good", turn=1)  # and back: the newest judgement wins again
    assert [(e.turn, e.label) for e in tuning.listing(s.store)] == [(1, "desirable")]


def test_re_rating_a_turn_as_neutral_drops_its_automatic_example(tmp_path, make_config):
    s = session(tmp_path, make_config, ["Paris.", "You're welcome."])
    list(s.turn("What is the capital of France?"))
    list(s.turn("Thanks, perfect!"))
    tuning.add(s.store, chat("What is the capital of France?", "Lyon."), "undesirable", "user", turn=1)
    assert sorted((e.source, e.label) for e in tuning.listing(s.store)) == [("auto", "desirable"),
                                                                            ("user", "undesirable")]
    rate(s.ctx, "rating", 3, turn=1)  # neither good nor bad: the automatic candidate goes, the user's stays
    assert [(e.source, e.answer) for e in tuning.listing(s.store)] == [("user", "Lyon.")]


def test_a_better_answer_for_a_turn_sits_beside_the_bad_one(store):
    tuning.add(store, chat("What is 2+2?", "5"), "undesirable", "auto", turn=3)
    tuning.add(store, chat("What is 2+2?", "4"), "desirable", "agent", "the right sum", turn=3)
    assert len(tuning.listing(store)) == 2 and dpo_pairs(store) == [("What is 2+2?", "4", "5")]
    tuning.add(store, chat("What is 2+2?", "5"), "desirable", "user", turn=3)  # the user likes "5" after all
    assert [(e.label, e.answer) for e in tuning.listing(store)] == [("desirable", "5")]


def test_editing_a_label_replaces_the_turns_example_under_it(store):
    bad = tuning.add(store, chat("What is 2+2?", "5"), "undesirable", "auto", turn=3)
    good = tuning.add(store, chat("What is 2+2?", "4"), "desirable", "agent", turn=3)
    assert tuning.edit(store, bad.id, label="desirable").label == "desirable"  # no clash with the unique (turn, label)
    assert [e.id for e in tuning.listing(store)] == [bad.id] and tuning.get(store, good.id) is None


def test_dpo_never_pairs_an_answer_with_itself(store):
    first = tuning.add(store, chat("What is the capital of France?", "Paris."), "desirable", "auto", turn=1)
    second = tuning.add(store, chat("What is the capital of France?", "Paris."), "undesirable", "user")
    assert dpo_pairs(store) == []  # the same question, the same answer: no preference to learn
    with store.write() as db:  # both labels on one turn, as a database written before the fix holds them
        db.execute("UPDATE examples SET turn=? WHERE id=?", (first.turn, second.id))
    assert dpo_pairs(store) == []


def test_export_by_split_and_bad_format(store):
    examples = [tuning.add(store, chat(f"Question {i}?", f"Answer {i}."), "desirable", "user", eval_share=0.5)
                for i in range(20)]
    evals = list(tuning.export(store, "sft", split="eval"))
    assert len(evals) == sum(e.split == "eval" for e in examples) > 0
    assert len(evals) + len(list(tuning.export(store, "sft", split="train"))) == 20
    with pytest.raises(ValueError, match="format must be one of sft, kto, dpo"):
        list(tuning.export(store, "orpo"))


def test_japanese_is_kept_as_is(store):
    e = tuning.add(store, chat("これは何ですか？", "りんごです。🍎"), "desirable", "user", "お手本")
    raw = store.read("SELECT messages FROM examples WHERE id=?", (e.id,))[0][0]
    assert "これは何ですか？" in raw and "\\u" not in raw  # stored readable, not escaped
    line = json.dumps(next(tuning.export(store, "sft")), ensure_ascii=False)
    assert "りんごです。🍎" in line and json.loads(line)["messages"][1]["content"] == "りんごです。🍎"
    assert tuning.get(store, e.id).why == "お手本" and e.question == "これは何ですか？"
