"""Visible reasoning: the streaming `<think>` parser, the think-or-not router, loop and
budget guards, and the quality score of a reasoning trace.

Owns: splitting a model's streamed text into thoughts and answer (tags split across
chunks, a missing closing tag, text before the tag, a model that ignores the
instruction), deciding whether a message deserves thinking (`auto` mode), noticing
degenerate reasoning while it streams (repetition loops, runaway length), scoring a
finished trace, and splitting a trace into steps for `/why`.
Does not own: calling the model (llm.py) or showing anything (cli/repl.py).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

OPEN, CLOSE = "<think>", "</think>"


@dataclass
class ThinkParser:
    """Feed streamed text; get ("think" | "answer", text) pieces as soon as they are certain.

    The meaning of a whole stream: text before the first `<think>` is said aloud (answer),
    text up to `</think>` is thought, the rest is the answer; with no `<think>` it is all
    answer, with no `</think>` all the rest is thought. Leading blanks of the answer are
    dropped. Any split of a stream into chunks gives the same thoughts and answer."""

    state: str = "pre"  # pre (no <think> yet) → think → post
    pending: str = ""  # text held back: it may be the beginning of a tag, or leading blanks
    thoughts: list[str] = field(default_factory=list)
    answer: list[str] = field(default_factory=list)
    _post_started: bool = False

    def feed(self, text: str) -> list[tuple[str, str]]:
        self.pending += text
        out: list[tuple[str, str]] = []
        if self.state == "pre":
            if OPEN not in self.pending:
                keep = _partial_suffix(self.pending, OPEN)
                ready = self.pending[: len(self.pending) - keep]
                if ready.strip():
                    out += self._emit("answer", ready if self.answer else ready.lstrip())
                    self.pending = self.pending[len(ready):]
                return out
            before, self.pending = self.pending.split(OPEN, 1)
            out += self._emit("answer", before if self.answer else before.lstrip())
            self.state = "think"
        if self.state == "think":
            if CLOSE not in self.pending:
                keep = _partial_suffix(self.pending, CLOSE)
                out += self._emit("think", self.pending[: len(self.pending) - keep])
                self.pending = self.pending[len(self.pending) - keep:]
                return out
            thought, self.pending = self.pending.split(CLOSE, 1)
            out += self._emit("think", thought)
            self.state = "post"
        if not self._post_started:
            self.pending = self.pending.lstrip()
            self._post_started = bool(self.pending)
        out += self._emit("answer", self.pending)
        self.pending = ""
        return out

    def finish(self) -> list[tuple[str, str]]:
        """End of stream: what was held back is what it looked like."""
        rest, self.pending = self.pending, ""
        if self.state == "think":
            return self._emit("think", rest)
        return self._emit("answer", rest if self.answer else rest.lstrip())

    @property
    def thinking(self) -> bool:
        return self.state == "think"

    def _emit(self, kind: str, text: str) -> list[tuple[str, str]]:
        if not text:
            return []
        (self.thoughts if kind == "think" else self.answer).append(text)
        return [(kind, text)]


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a beginning of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


# --- routing -----------------------------------------------------------------------------

_COMPLEX = re.compile(
    r"\b(why|how (do|can|should|would) (i|we)|how does|explain|prove|derive|calculate|compute|solve|plan|design|compare|"
    r"step[- ]by[- ]step|debug|implement|algorithm|code|function|optimi[sz]e|estimate|trade-?offs?|pros and cons)\b"
    r"|なぜ|どうして|説明|証明|計算|解いて|計画|設計|比較|手順|実装|コード|関数|最適|見積",
    re.IGNORECASE)
_MATH = re.compile(r"\d+\s*[+*/^×÷=]\s*\d+|\d+\s+-\s+\d+|\d+\s*%|\bsqrt\b|∑|∫")
_WORD_PROBLEM = re.compile(r"\b(how (many|much|long|far)|when|if)\b|いくつ|何個|何分|何時間|もし", re.IGNORECASE)


def needs_thinking(text: str) -> bool:
    """`auto` mode: multi-step, math, planning or code goes through thinking; chit-chat and
    simple look-ups go straight to the answer."""
    if _MATH.search(text) or "```" in text or _COMPLEX.search(text):
        return True
    if re.search(r"\d", text) and _WORD_PROBLEM.search(text):  # a word problem with numbers
        return True
    sentences = [s for s in re.split(r"[.!?。！？\n]+", text) if s.strip()]
    return len(sentences) >= 3 or len(text) > 400


# --- guards while streaming ---------------------------------------------------------------

def looping(thoughts: str, window: int = 60, repeats: int = 3) -> bool:
    """True when the tail of the thoughts has repeated itself `repeats` times (a reasoning loop)."""
    if len(thoughts) < window * repeats:
        return False
    tail = thoughts[-window:]
    return thoughts.count(tail) >= repeats


# --- quality ------------------------------------------------------------------------------

_STEP = re.compile(r"^\s*(?:\d+[.)]|[-*•]|step \d+|first|second|then|next|finally|so|therefore|まず|次に|最後に|したがって)",
                   re.IGNORECASE | re.MULTILINE)


def steps(thoughts: str) -> list[str]:
    """The trace split into steps: paragraphs, or list items / step words when it is one block."""
    parts = [p.strip() for p in re.split(r"\n\s*\n", thoughts) if p.strip()]
    if len(parts) <= 1:
        parts = [p.strip() for p in re.split(r"\n(?=\s*(?:\d+[.)]|[-*•]))", thoughts) if p.strip()]
    if len(parts) <= 1:
        parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+|(?<=[。！？])\s*", thoughts) if p.strip()]
    return parts


def score(thoughts: str, answer: str, budget_tokens: int, tokens: int, cut: str = "") -> dict:
    """Quality of a reasoning trace in [0, 1], with its parts kept for explanation."""
    words = re.findall(r"\w+", thoughts.lower())
    distinct = len(set(zip(words, words[1:], words[2:]))) / max(1, len(words) - 2) if len(words) > 3 else 1.0
    numbers_answer = set(re.findall(r"\d+(?:\.\d+)?", answer))
    tail = thoughts[-max(200, len(thoughts) // 3):]
    if numbers_answer:
        consistent = len(numbers_answer & set(re.findall(r"\d+(?:\.\d+)?", tail))) / len(numbers_answer)
    else:
        answer_words = set(re.findall(r"\w{4,}", answer.lower()))
        consistent = min(1.0, 3 * len(answer_words & set(words)) / max(1, len(answer_words))) if answer_words else 0.0
    n_steps = len(steps(thoughts)) if thoughts.strip() else 0
    parts = {
        "steps": n_steps,
        "has_steps": 1.0 if n_steps >= 2 or len(_STEP.findall(thoughts)) >= 2 else 0.5 if n_steps == 1 else 0.0,
        "no_repetition": round(min(1.0, distinct / 0.8), 3),
        "consistent": round(consistent, 3),
        "length": 1.0 if 10 <= tokens <= budget_tokens else 0.5 if tokens else 0.0,
    }
    total = 0.25 * parts["has_steps"] + 0.25 * parts["no_repetition"] + 0.3 * parts["consistent"] + 0.2 * parts["length"]
    if cut:
        parts["cut"] = cut
        total *= 0.5
    parts["score"] = round(total, 3)
    return parts


# --- one streamed answer ------------------------------------------------------------------

class Trace:
    """Follows one streamed model call: native thoughts (`reasoning_content`) or `<think>` text,
    the answer, timings, and whether the thinking must be cut (budget or loop)."""

    def __init__(self, parse: bool, budget_tokens: int):
        self.parser = ThinkParser() if parse else None
        self.budget = budget_tokens
        self.thoughts: list[str] = []
        self.answer: list[str] = []
        self.thought_tokens = 0
        self.cut = ""
        self.first_thought: float | None = None
        self.last_thought: float | None = None
        self.first_answer: float | None = None

    def feed(self, chunk) -> list[tuple[str, str]]:
        pieces: list[tuple[str, str]] = []
        native = chunk.additional_kwargs.get("reasoning_content") if hasattr(chunk, "additional_kwargs") else None
        if native:
            pieces.append(("think", native))
        text = chunk.content if isinstance(chunk.content, str) else getattr(chunk, "text", "")
        if text:
            pieces += self.parser.feed(text) if self.parser else [("answer", text)]
        return self._record(pieces)

    def finish(self) -> list[tuple[str, str]]:
        return self._record(self.parser.finish() if self.parser else [])

    def _record(self, pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
        now = time.perf_counter()
        for kind, text in pieces:
            if kind == "think":
                self.thoughts.append(text)
                self.first_thought = self.first_thought or now
                self.last_thought = now
            else:
                self.answer.append(text)
                self.first_answer = self.first_answer or now
        if any(kind == "think" for kind, _ in pieces):
            self.thought_tokens += 1  # one streamed chunk is one token
            if self.thought_tokens > self.budget:
                self.cut = f"reasoning passed its budget of {self.budget} tokens"
            elif looping("".join(self.thoughts[-400:])):
                self.cut = "reasoning went round in a loop"
        return pieces

    @property
    def thought_text(self) -> str:
        return "".join(self.thoughts)

    @property
    def answer_text(self) -> str:
        return "".join(self.answer)

    def thought_seconds(self) -> float:
        if self.first_thought is None:
            return 0.0
        return round((self.first_answer or self.last_thought) - self.first_thought, 3)
