"""graph/models/sentences.py: an answer stopped by its length budget ends at its last complete sentence
(English .!?, Japanese 。！？, a line break), the user sees it sentence by sentence, thoughts pass
at once, and an answer that ended by itself is shown whole."""

import pytest

from graph.models import sentences


def stream(pieces, stopped: bool):
    seen = []
    held = sentences.Held(lambda kind, text: seen.append((kind, text)))
    for kind, text in pieces:
        held(kind, text)
    return held.finish(stopped), seen


@pytest.mark.parametrize("text, kept", [
    ("Pi is 3.14 and more. It is irrational and", "Pi is 3.14 and more."),
    ('He said "stop!" and then', 'He said "stop!"'),
    ("光合成は植物の働きです。光と水から糖を", "光合成は植物の働きです。"),
    ("「はい！」と言って", "「はい！」"),
    ("- light\n- water\n- carb", "- light\n- water\n"),
    ("No sentence ends here", "No sentence ends here")])  # nothing complete: kept whole
def test_a_stopped_answer_ends_at_its_last_complete_sentence(text, kept):
    answer, seen = stream([("answer", piece) for piece in text.split(" ")[:1]] +
                          [("answer", " " + piece) for piece in text.split(" ")[1:]], stopped=True)
    assert answer == kept == "".join(t for k, t in seen if k == "answer")


def test_sentences_are_shown_as_they_end_and_thoughts_at_once():
    seen = []
    held = sentences.Held(lambda kind, text: seen.append((kind, text)))
    held("think", "hmm")
    held("answer", "It is 3.")
    assert seen == [("think", "hmm")]  # "3." may go on as "3.14"
    held("answer", "14. Next")
    assert seen[-1] == ("answer", "It is 3.14.")
    assert held.finish(stopped=False) == "It is 3.14. Next"  # the model ended it: shown whole
    assert seen[-1] == ("answer", " Next")


@pytest.mark.parametrize("text, metadata, kept", [
    ("One. Two and", {"finish_reason": "length"}, "One."), ("One. Two and", {"finish_reason": "stop"}, "One. Two and"),
    ("一つ。二つと", {"done_reason": "length"}, "一つ。"), ("no end at all", {"finish_reason": "length"}, "no end at all")])
def test_a_whole_answer_is_cut_the_same_way(text, metadata, kept):
    assert sentences.ended(text, metadata) == kept


@pytest.mark.parametrize("metadata, stopped", [
    ({"finish_reason": "length"}, True), ({"done_reason": "length"}, True), ({"finish_reason": "stop"}, False), ({}, False)])
def test_a_budget_stop_is_read_from_either_backend(metadata, stopped):
    assert sentences.budget_stopped(metadata) is stopped


def test_the_embedded_model_stopped_by_its_budget_ends_at_a_sentence(tmp_path, make_config):
    from langchain_core.messages import HumanMessage

    from graph.context import Context
    from graph.models import llm

    config = make_config({"llm": {"backend": "embedded", "temperature": 0}})
    ctx = Context(home=str(tmp_path / "home"), config=str(config), cwd=str(tmp_path))
    seen = []
    message, _ = llm.respond(ctx, [HumanMessage("Explain photosynthesis in detail, step by step.")], [],
                             notify=lambda text: None, emit=lambda kind, text: seen.append(text), max_tokens=40)
    assert message.response_metadata["finish_reason"] == "length"  # llama.cpp says why it stopped
    answer = message.text
    assert answer.strip() and answer == "".join(seen)  # the user saw what was kept
    assert sentences.last_end(answer) in (len(answer), 0)  # a complete sentence last, or no sentence at all
