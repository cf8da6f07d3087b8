"""The agent's own tuning data: chat examples labelled desirable or undesirable, curated
automatically from rewards, by the agent's tools and by the user, and exported for training.

Owns: the `examples` table (messages in chat format ending with the assistant's answer,
label, source auto/agent/user, reward, split train/eval, the turn it came from, why; a new
judgement of a turn's answer replaces the opposite one, a better answer written for the turn
sits beside it), making an example from a turn of the transcript, listing/editing/removing,
and export as JSON lines in the formats TRL's trainers read: `sft` (conversational
"messages", desirable only), `kto` (unpaired preference: "prompt", "completion", boolean
"label") and `dpo` (preference pairs: "prompt", "chosen", "rejected", pairing a desirable and
an undesirable answer to the same question: the same text once case, width, spaces and
punctuation are set aside, or a turn the user re-asked (its reward's `reasked`) and the
turns that re-asked it; never two equal answers).
Does not own: deciding which turns become candidates (rating.py) or the guard on
self-modification (guard.py).
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from graph.store import Store

LABELS = ("desirable", "undesirable")
SOURCES = ("auto", "agent", "user")
FORMATS = ("sft", "kto", "dpo")


@dataclass
class Example:
    id: int
    messages: list[dict]
    label: str
    source: str
    reward: float | None
    split: str
    turn: int | None
    why: str
    created: float
    updated: float

    @property
    def question(self) -> str:
        return next((m["content"] for m in reversed(self.messages[:-1]) if m["role"] == "user"), "")

    @property
    def answer(self) -> str:
        return self.messages[-1]["content"] if self.messages else ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


COLUMNS = "id, messages, label, source, reward, split, turn, why, created, updated"


def _example(row: tuple) -> Example:
    values = list(row)
    values[1] = json.loads(values[1])
    return Example(*values)


def split_for(messages: list[dict], eval_share: float) -> str:
    """A stable train/eval split: the same example always lands on the same side."""
    key = zlib.crc32(json.dumps(messages, ensure_ascii=False, sort_keys=True).encode())
    return "eval" if key % 1000 < eval_share * 1000 else "train"


def check(messages: list[dict], label: str) -> None:
    if label not in LABELS:
        raise ValueError(f"label must be desirable or undesirable, not {label!r}")
    if not messages or messages[-1].get("role") != "assistant" or not str(messages[-1].get("content", "")).strip():
        raise ValueError("an example must end with the assistant's answer")
    if not any(m.get("role") == "user" and str(m.get("content", "")).strip() for m in messages):
        raise ValueError("an example needs the user's message")
    for m in messages:
        if m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise ValueError("each message needs a role (system, user or assistant) and text content")


def add(store: Store, messages: list[dict], label: str, source: str, why: str = "", value: float | None = None,
        turn: int | None = None, eval_share: float = 0.2) -> Example:
    """Add an example (the same turn and label twice is one example, updated; the same answer of
    the turn under the other label is replaced: the newest judgement wins)."""
    check(messages, label)
    now = time.time()
    with store.write() as db:
        if turn is not None:
            _supersede(db, turn, label, messages[-1]["content"])
        row = db.execute("SELECT id FROM examples WHERE turn=? AND label=?", (turn, label)).fetchone() \
            if turn is not None else None
        if row:
            db.execute("UPDATE examples SET messages=?, source=?, reward=?, why=?, updated=? WHERE id=?",
                       (json.dumps(messages, ensure_ascii=False), source, value, why, now, row[0]))
            example_id = row[0]
        else:
            example_id = db.execute(
                f"INSERT INTO examples ({COLUMNS}) VALUES (NULL,?,?,?,?,?,?,?,?,?)",
                (json.dumps(messages, ensure_ascii=False), label, source, value, split_for(messages, eval_share),
                 turn, why, now, now)).lastrowid
    return get(store, example_id)


def _supersede(db, turn: int, label: str, answer: str, keep: int | None = None) -> None:
    """Drop the turn's example under the other label that holds the same answer (a corrected
    answer written for the turn keeps the original beside it: together they make a DPO pair)."""
    rows = db.execute("SELECT id, messages FROM examples WHERE turn=? AND label!=? AND id IS NOT ?",
                      (turn, label, keep)).fetchall()
    for example_id, messages in rows:
        if json.loads(messages)[-1]["content"].strip() == answer.strip():
            db.execute("DELETE FROM examples WHERE id=?", (example_id,))


def from_turn(store: Store, turn: int, system: str = "") -> list[dict]:
    """A turn of the transcript as chat messages: (system,) the user's message, the final answer."""
    rows = [r for r in store.history_of(turn) if r["content"].strip() and not r["meta"].get("agent")]
    user = next((r["content"] for r in rows if r["role"] == "user"), "")
    answer = next((r["content"] for r in reversed(rows) if r["role"] == "assistant" and not r["tool_calls"]), "")
    if not user or not answer:
        raise ValueError(f"turn {turn} has no user message and answer to learn from")
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def get(store: Store, example_id: int) -> Example | None:
    rows = store.read(f"SELECT {COLUMNS} FROM examples WHERE id=?", (example_id,))
    return _example(rows[0]) if rows else None


def listing(store: Store, label: str | None = None, split: str | None = None, source: str | None = None,
            limit: int | None = None) -> list[Example]:
    """Examples, newest first."""
    where, args = [], []
    for column, value in (("label", label), ("split", split), ("source", source)):
        if value:
            where.append(f"{column}=?")
            args.append(value)
    sql = f"SELECT {COLUMNS} FROM examples" + (" WHERE " + " AND ".join(where) if where else "")
    return [_example(r) for r in store.read(sql + " ORDER BY id DESC LIMIT ?", (*args, limit or -1))]


def edit(store: Store, example_id: int, label: str | None = None, answer: str | None = None,
         split: str | None = None, why: str | None = None) -> Example:
    found = get(store, example_id)
    if found is None:
        raise ValueError(f"no example {example_id} (see `data list`)")
    messages = found.messages
    if answer is not None:
        messages = [*messages[:-1], {"role": "assistant", "content": answer}]
    label = label or found.label
    check(messages, label)
    if split not in (None, "train", "eval"):
        raise ValueError(f"split must be train or eval, not {split!r}")
    with store.write() as db:
        if found.turn is not None:  # the edit is the turn's newest judgement under this label
            db.execute("DELETE FROM examples WHERE turn=? AND label=? AND id!=?", (found.turn, label, example_id))
            _supersede(db, found.turn, label, messages[-1]["content"], keep=example_id)
        db.execute("UPDATE examples SET messages=?, label=?, split=?, why=?, updated=? WHERE id=?",
                   (json.dumps(messages, ensure_ascii=False), label, split or found.split,
                    found.why if why is None else why, time.time(), example_id))
    return get(store, example_id)


def drop_auto(store: Store, turn: int) -> list[int]:
    """Delete the automatic candidates of a turn (its reward was re-rated to neither good nor bad);
    the user's and the agent's own examples stay. Returns the ids deleted."""
    with store.write() as db:
        ids = [r[0] for r in db.execute("SELECT id FROM examples WHERE turn=? AND source='auto'", (turn,))]
        db.execute("DELETE FROM examples WHERE turn=? AND source='auto'", (turn,))
    return ids


def remove(store: Store, example_id: int) -> Example:
    found = get(store, example_id)
    if found is None:
        raise ValueError(f"no example {example_id} (see `data list`)")
    with store.write() as db:
        db.execute("DELETE FROM examples WHERE id=?", (example_id,))
    return found


def counts(store: Store) -> dict[str, int]:
    return {f"{label}/{split}": n for label, split, n in
            store.read("SELECT label, split, COUNT(*) FROM examples GROUP BY label, split")}


def export(store: Store, fmt: str, split: str | None = None) -> Iterator[dict]:
    """Records in a TRL trainer's dataset format (conversational), oldest example first."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    examples = list(reversed(listing(store, split=split)))
    if fmt == "sft":
        for e in examples:
            if e.label == "desirable":
                yield {"messages": e.messages}
    elif fmt == "kto":
        for e in examples:
            yield {"prompt": e.messages[:-1], "completion": e.messages[-1:], "label": e.label == "desirable"}
    else:
        asked = reasked_turns(store)
        good = [e for e in examples if e.label == "desirable"]
        for bad in (e for e in examples if e.label == "undesirable"):
            matches = [g for g in good if g.answer.strip() != bad.answer.strip() and same_question(g, bad, asked)]
            if matches:  # a better answer to the same turn first, then the newest
                match = max(matches, key=lambda g: (g.turn is not None and g.turn == bad.turn, g.id))
                yield {"prompt": bad.messages[:-1], "chosen": match.messages[-1:], "rejected": bad.messages[-1:]}


def same_question(a: Example, b: Example, asked: dict[int, int]) -> bool:
    """The same question: the same turn or chain of re-asks, or the same text once case, width,
    spaces and punctuation are set aside. Sharing words is not enough ("the capital of France" /
    "of Japan")."""
    if a.turn is not None and b.turn is not None and asked.get(a.turn, a.turn) == asked.get(b.turn, b.turn):
        return True
    return bool(normal(a.question)) and normal(a.question) == normal(b.question)


def normal(text: str) -> str:
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text).casefold())


def reasked_turns(store: Store) -> dict[int, int]:
    """Turn → the first turn of its question: a turn whose reward says the user re-asked it
    (`reasked`) shares its question with the next rewarded turn."""
    first: dict[int, int] = {}
    before = None
    for turn, components in store.read("SELECT turn, components FROM rewards ORDER BY turn"):
        first[turn] = first[before[0]] if before and "reasked" in before[1] else turn
        before = (turn, json.loads(components))
    return first
