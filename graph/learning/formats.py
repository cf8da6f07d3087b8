"""The answer forms a user's standing preferences name, made from the answer's text itself,
whatever the model wrote: SmolLM2-135M ignores format instructions (bench_feedback's bullets
user: 1/10 satisfied with the instruction alone) and topic bans.

Owns: `bulleted` (each sentence of a prose line becomes its own "- " line; a line that already is
a list item, a table row, a heading or a quote is left alone, and so is a lead-in sentence ending
with a colon) and `plain` (markdown taken out: heading and list markers, quote marks, bold and
italics, inline code ticks; a table row becomes its cells joined by commas, its separator row
goes), and `leaving_out` (the sentences that bring up a banned topic go: topics.mentions). All
leave code fences and the code inside them alone, and all work line by line and sentence by
sentence, so the form of an answer's beginning (cut at a sentence end) is the beginning of the
form of the whole answer: sentences.Held applies them while the answer streams.
Does not own: where a sentence ends (sentences.py), what a topic is (topics.py) or which answers
get a form (feedback.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from graph.learning import topics
from graph.models import sentences

FENCE = re.compile(r"^\s*(```|~~~)")
LISTED = re.compile(r"^\s*([-*+•]\s|\d+[.)](\s|$)|\||#{1,6}\s|>)")  # a line bulleted already, or not prose
LEAD_IN = (":", "：")
MARKER = re.compile(r"^\s*(#{1,6}\s+|>\s?|[-*+•]\s+|\d+[.)](\s+|$))+")
ROW = re.compile(r"^\s*\|(.*?)\|?\s*$")
RULE_ROW = re.compile(r"^[\s|:-]+$")  # a table's |---|:--:| separator
EMPHASIS = re.compile(r"\*\*|__|`|(?<![\w*])\*(?=\S)|(?<=\S)\*(?![\w*])")


def bulleted(text: str) -> str:
    """Every prose sentence on its own "- " line (see the module docstring)."""
    return _by_line(text, _bullets)


def plain(text: str) -> str:
    """The answer without markdown (see the module docstring)."""
    return _by_line(text, _plain)


def leaving_out(banned: list[str]) -> Callable[[str], str]:
    """A form that leaves out the sentences bringing up any of the `banned` topics."""
    return lambda text: _by_line(text, lambda line: _without(line, banned))


def _by_line(text: str, shape: Callable[[str], str | None]) -> str:
    """`shape` applied to each line outside code fences; a line it returns None for goes."""
    out, fenced = [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            fenced = not fenced
            out.append(line)
        elif (shaped := line if fenced else shape(line)) is not None:
            out.append(shaped)
    return "\n".join(out)


def _bullets(line: str) -> str:
    if not line.strip() or LISTED.match(line):
        return line
    return "\n".join(s if s.endswith(LEAD_IN) else f"- {s}" for s in _sentences(line))


def _sentences(line: str) -> list[str]:
    """The sentences of one line (the last may be unfinished), stripped."""
    return [s for piece in _pieces(line) if (s := piece.strip())]


def _pieces(line: str) -> list[str]:
    """The line cut after each sentence end: its sentences with the spaces before them."""
    ends = [0, *(m.end() for m in sentences.ENDED.finditer(line)), len(line)]
    return [line[a:b] for a, b in zip(ends, ends[1:]) if line[a:b]]


def _without(line: str, banned: list[str]) -> str | None:
    pieces = _pieces(line)
    kept = [p for p in pieces if not any(topics.mentions(topic, p) for topic in banned)]
    if len(kept) == len(pieces):
        return line
    text = "".join(kept)
    return (text.lstrip() if kept[:1] != pieces[:1] else text) or None  # a line left empty goes


def _plain(line: str) -> str | None:
    row = ROW.match(line)
    if row and RULE_ROW.match(row[1]):
        return None
    if row:
        line = ", ".join(cell.strip() for cell in row[1].split("|") if cell.strip())
    return EMPHASIS.sub("", MARKER.sub("", line))
