"""An answer its length budget stopped mid-sentence ends at its last complete sentence instead.

Owns: where a sentence ends (English `.!?` before a space or the end, Japanese `。！？`, a line
break, each with its closing quotes or brackets), and `Held`: a filter between the model's
stream and the user that passes the answer on sentence by sentence and, when the budget stopped
it (finish reason `length`), drops the unfinished tail (`ended` does the same to a whole answer);
an answer without one complete sentence is kept whole (something is always shown). Given a
format (formats.py: bullets, plain), it shows the format of what it has passed on so far.
Does not own: the budget (feedback.py's short preference), the formats or the streaming itself (llm.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable

CLOSE = r"[\"'”’)\]」』）]*"
ENDED = re.compile(rf"[.!?]{CLOSE}(?=\s|$)|[。！？]{CLOSE}|\n")  # in a finished text, its end counts
FOLLOWED = re.compile(rf"[.!?]{CLOSE}(?=\s)|[。！？]{CLOSE}|\n")  # while streaming: "3." may go on as "3.14"


def last_end(text: str, pattern: re.Pattern = ENDED) -> int:
    """Where the last complete sentence of `text` ends (0: none)."""
    return max((m.end() for m in pattern.finditer(text)), default=0)


def budget_stopped(metadata: dict) -> bool:
    """Did the model stop because the answer reached its token budget? (llama.cpp's `finish_reason`,
    Ollama's `done_reason`.)"""
    return "length" in (metadata.get("finish_reason"), metadata.get("done_reason"))


def ended(text: str, metadata: dict) -> str:
    """A whole (not streamed) answer: cut back to its last complete sentence when the budget
    stopped it, kept whole when it has none."""
    end = last_end(text) if budget_stopped(metadata) else 0
    return text[:end] if end else text


class Held:
    """`emit(kind, text)` that holds the answer's unfinished sentence back until it ends;
    other kinds (thoughts) pass at once. `finish` releases or drops the rest. `form` reshapes
    the answer's text; the form of each released beginning must begin the form of the whole
    (formats.py's do), as the user sees it grow."""

    def __init__(self, emit: Callable[[str, str], None], form: Callable[[str], str] | None = None):
        self.emit, self.form = emit, form or (lambda text: text)
        self.released, self.shown, self.pending = "", "", ""

    def __call__(self, kind: str, text: str) -> None:
        if kind != "answer":
            self.emit(kind, text)
            return
        self.pending += text
        self._show(last_end(self.pending, FOLLOWED))

    def finish(self, stopped: bool) -> str:
        """Release what is held; `stopped` by the budget: only up to the last sentence end, unless
        nothing was released yet. Returns the whole answer as shown (in its form; as written when
        its form is empty)."""
        end = last_end(self.pending) if stopped else len(self.pending)
        self._show(end if end or self.released.strip() else len(self.pending))
        self.pending = ""
        if self.released.strip() and not self.shown.strip():  # the form left nothing (all of it on a
            self.shown = self.released  # banned topic: the question was about it): the answer as written
            self.emit("answer", self.shown)
        return self.shown

    def _show(self, end: int) -> None:
        if end:
            self.released += self.pending[:end]
            self.pending = self.pending[end:]
            formed = self.form(self.released)
            if formed[len(self.shown):]:
                self.emit("answer", formed[len(self.shown):])
            self.shown = formed
