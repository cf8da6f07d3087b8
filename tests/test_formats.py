"""graph/learning/formats.py: bullets and plain text made from the answer's text, and a banned topic's
sentences left out, on answers as SmolLM2 and instruction-following models write them, English
and Japanese; code fences, lists and tables are left alone; the form of every beginning the
stream releases begins the form of the whole; a form that leaves nothing shows the answer as written."""

import pytest

from graph.learning import formats
from graph.models import sentences

SMOL = ("Photosynthesis is the process by which plants make food. It uses light, water and carbon dioxide! "
        "Why does it matter? Because it makes oxygen.")
JA = "光合成は植物が糖を作る働きです。光と水を使います！なぜ大切？「酸素」を作るからです。"
MIXED = """Here are the steps:
1. Light is absorbed. Then water splits.
2. Sugar is made.

```python
print("a. b. c.")
```
| Input | Output |
|-------|:------:|
| light | sugar |
## Summary
**Plants** make *food*. 2*3 is 6, e.g. six."""


def test_each_prose_sentence_becomes_a_bullet():
    assert formats.bulleted(SMOL) == ("- Photosynthesis is the process by which plants make food.\n"
                                      "- It uses light, water and carbon dioxide!\n- Why does it matter?\n"
                                      "- Because it makes oxygen.")
    assert formats.bulleted(JA) == "- 光合成は植物が糖を作る働きです。\n- 光と水を使います！\n- なぜ大切？\n- 「酸素」を作るからです。"
    assert formats.bulleted("Pi is 3.14 and more.\n\nIt never ends") == "- Pi is 3.14 and more.\n\n- It never ends"


def test_bullets_leave_lists_code_tables_headings_and_lead_ins_alone():
    assert formats.bulleted(MIXED) == MIXED.replace("**Plants** make *food*. 2*3 is 6, e.g. six.",
                                                     "- **Plants** make *food*.\n- 2*3 is 6, e.g.\n- six.")
    already = "- light\n- water\n* carbon dioxide"
    assert formats.bulleted(already) == already
    assert formats.bulleted("To sum up. These matter:") == "- To sum up.\nThese matter:"


def test_plain_takes_the_markdown_out_but_not_the_code():
    assert formats.plain(MIXED) == """Here are the steps:
Light is absorbed. Then water splits.
Sugar is made.

```python
print("a. b. c.")
```
Input, Output
light, sugar
Summary
Plants make food. 2*3 is 6, e.g. six."""
    assert formats.plain("> **注意**：火山は危険です。\n- 噴火\n- `溶岩`") == "注意：火山は危険です。\n噴火\n溶岩"
    assert formats.plain(SMOL) == SMOL and formats.plain(JA) == JA


SPORT = ("Brazil loves football. Volleyball and basketball are popular too!\n- Football clubs\n- Beach volleyball\n"
         "```\nsport = 'football'\n```\nFootball. Soccer.  Footballs fly. Rugby.")
BANNED = formats.leaving_out(["football"])


def test_a_banned_topics_sentences_are_left_out():
    assert BANNED(SPORT) == ("Volleyball and basketball are popular too!\n- Beach volleyball\n"
                             "```\nsport = 'football'\n```\nRugby.")  # the code is kept; "soccer" is football too (topics.SAME)
    assert formats.leaving_out(["サッカー"])("日本ではサッカーが人気です。野球もです！") == "野球もです！"
    assert formats.leaving_out(["the weather"])("The weather is mild. Tides are not. Weather vanes turn.") == \
        "Tides are not."
    assert BANNED("Tennis.  Rugby. Foosball.") == "Tennis.  Rugby. Foosball."  # nothing mentions it: untouched


@pytest.mark.parametrize("banned, text, kept", [
    ("football", "Soccer is popular. Rugby too.", "Rugby too."),
    ("football", "ブラジルではサッカーが人気です。バレーボールも。", "バレーボールも。"),
    ("サッカー", "Brazil loves soccer. And football! Volleyball too.", "Volleyball too."),
    ("soccer", "Football clubs. Tennis.", "Tennis."),
    ("the weather", "今日は天気がいい。Weather is mild. Tides are not.", "Tides are not."),
    ("cats", "A cat sleeps. 猫は寝る。Dogs bark.", "Dogs bark."),
    ("Star Wars", "Star Wars is a film. Movies are fun.", "Movies are fun.")])  # no other names: itself only
def test_a_ban_covers_the_topics_other_names(banned, text, kept):
    assert formats.leaving_out([banned])(text) == kept


def test_a_form_that_leaves_nothing_shows_the_answer_as_written():
    seen = []
    held = sentences.Held(lambda kind, text: seen.append(text), BANNED)
    held("answer", "Football is a sport. ")
    held("answer", "Footballs are round.")
    assert held.finish(stopped=False) == "Football is a sport. Footballs are round." == "".join(seen)


@pytest.mark.parametrize("form", [formats.bulleted, formats.plain, BANNED])
@pytest.mark.parametrize("text", [SMOL, JA, MIXED, SPORT, "Steps: first. Then:\n1. Mix. 2. Bake.\n> Note. Done"])
def test_the_form_of_each_released_beginning_begins_the_form_of_the_whole(form, text):
    ends = [m.end() for m in sentences.FOLLOWED.finditer(text)]
    assert ends  # the stream releases the answer at these points (sentences.Held)
    for end in ends:
        assert form(text).startswith(form(text[:end]))


@pytest.mark.parametrize("form", [formats.bulleted, formats.plain, BANNED])
def test_held_shows_the_form_as_the_answer_streams(form):
    seen = []
    held = sentences.Held(lambda kind, text: seen.append(text), form)
    for i, word in enumerate(MIXED.split(" ")):
        held("answer", word if i == 0 else " " + word)
    assert held.finish(stopped=False) == form(MIXED) == "".join(seen)
    assert len(seen) > 5  # sentence by sentence, not all at the end
