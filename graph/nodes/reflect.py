"""`reflect`: after each answer, keep what will matter later as long-term memories.

Cheap by design, since it runs on every turn: the model is asked only when the user's message
has cues of something durable (about themselves, a preference, a decision; English and
Japanese), with its answer constrained to JSON (llm.structured) and each item checked
against what the user actually said (a small model invents). An explicit "remember ..." /
「覚えて」 is kept as the user said it, with high importance; a turn whose tools did work
leaves a short "result" memory. Merging near-duplicates and superseding older facts is
memories.py's job. Failures here never cost the turn: the answer is already in.
Also here: whether the consolidation pass is due (every `memory.consolidate_every` new
memories; the REPL then runs actions/memory.py's `consolidate` when it is idle).
Does not own: storing, ranking or forgetting memories (memories.py), or recalling them (reason.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langgraph.runtime import Runtime

from graph.context import Context, of, writer
from graph.learning import guard
from graph.models import llm, prompts
from graph.state import AgentState

REMEMBER = re.compile(r"\b(remember|don'?t forget|do not forget|keep in mind|note that)\b|覚えて|記憶して|忘れないで|メモして",
                      re.IGNORECASE)
PERSONAL = re.compile(r"\b(i am|i'm|i was|my|i like|i love|i hate|i prefer|i dislike|i don'?t like|i live|i work|"
                      r"call me|i usually|i always|i never|i want|i need)\b|私|僕|俺|わたし|好き|嫌い|住んで|働いて|名前|趣味",
                      re.IGNORECASE)
DECIDED = re.compile(r"\b(let'?s|we decided|i decided|from now on|going forward)\b|今後|これから|決めた|ことにする",
                     re.IGNORECASE)
LIKES = re.compile(r"\b(like|love|hate|prefer|dislike|rather|favou?rite)\b|好き|嫌い|好み|より", re.IGNORECASE)
SCHEMA = {"type": "object", "required": ["memories"], "properties": {"memories": {
    "type": "array", "maxItems": 3, "items": {"type": "object", "required": ["text", "type", "importance"], "properties": {
        "text": {"type": "string", "maxLength": 200}, "type": {"enum": ["fact", "preference", "decision"]},
        "importance": {"type": "integer", "minimum": 1, "maximum": 5}}}}}}
LONGEST = 300  # characters of one memory


@dataclass
class Item:
    text: str
    type: str
    importance: float
    source: str


def reflect(state: AgentState, runtime: Runtime[Context]) -> dict:
    ctx = of(runtime)
    if ctx.parent_turn or not ctx.settings.memory.enabled:
        return {}
    messages = state["messages"]
    last_human = max((i for i, m in enumerate(messages) if m.type == "human"), default=-1)
    answer = messages[-1]
    if last_human < 0 or answer.type != "ai" or answer.response_metadata.get("interrupted"):
        return {}
    user = messages[last_human].text.strip()
    turn = ctx.store.turn_of(messages[last_human].id)
    items = candidates(ctx, user, answer.text.strip(), messages[last_human + 1:])
    if not items:
        return {}
    from graph.memory.memories import MemoryUnavailable, memories_of

    try:
        memories = memories_of(ctx)
        kept = [memories.add(i.text, i.type, i.importance, source=i.source, turn=turn) for i in items]
    except MemoryUnavailable as exc:
        writer(runtime)({"notice": f"memory is unavailable: {exc}"})
        return {}
    news = [m for m, what in kept if what != "merged" and m.type != "result"]
    if news:
        shown = "; ".join(m.text if len(m.text) < 60 else m.text[:57] + "…" for m in news)
        writer(runtime)({"status": f"remembered: {shown} (/memory lists memories)"})
    return {}


def candidates(ctx: Context, user: str, answer: str, steps: list) -> list[Item]:
    """What this exchange leaves to remember (before merging with what is already known)."""
    items: list[Item] = []
    kind = "decision" if DECIDED.search(user) else "preference" if LIKES.search(user) else "fact"
    if "example" in guard.directives(user):
        pass  # "remember this answer as a good example" is about tuning data (nodes/reward.py), not a memory
    elif REMEMBER.search(user):
        items.append(Item(_clip(user), kind, 0.9, "user"))
    elif PERSONAL.search(user) or DECIDED.search(user):
        found = llm_items(ctx, user, answer)
        items += found or [Item(_clip(user), kind, 0.5, "auto")]
    used = sorted({m.name for m in steps if m.type == "tool" and m.status != "error"} - {"current_time"})
    if used and answer:
        items.append(Item(_clip(f"Result of {', '.join(used)} for \"{user[:80]}\": {answer}"), "result", 0.3, "auto"))
    return items


def llm_items(ctx: Context, user: str, answer: str) -> list[Item]:
    """The model's durable items, kept only when grounded in the user's own words."""
    try:
        reply = llm.structured(ctx, prompts.REFLECT.format(user=user, answer=answer[:600]), SCHEMA)
    except llm.BackendError:
        return []
    said = _words(user)
    items = []
    for raw in (reply or {}).get("memories", []):
        text = " ".join(str(raw.get("text", "")).split())
        if text and _words(text) & said and text not in {i.text for i in items}:
            items.append(Item(_clip(text), raw.get("type", "fact"), min(1.0, int(raw.get("importance", 3)) / 5),
                              "auto"))
    return items


COMMON = {"the", "user", "users", "and", "that", "this", "with", "they", "their", "have", "from", "about"}


def _words(text: str) -> set[str]:
    """Content words, roughly stemmed (Latin words of 4+ letters cut to 4; kanji runs whole)."""
    latin = {w.lower()[:4] for w in re.findall(r"[A-Za-z]{4,}", text) if w.lower() not in COMMON}
    return latin | set(re.findall(r"[\u4e00-\u9fff]{2,}|[\u30a0-\u30ff]{2,}", text))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LONGEST else text[: LONGEST - 1] + "…"


def consolidation_due(ctx: Context) -> bool:
    """Have `memory.consolidate_every` memories been made since the last consolidation?"""
    every = ctx.settings.memory.consolidate_every
    if not (ctx.settings.memory.enabled and every):
        return False
    store = ctx.store
    return store.memories_since(float(store.get_meta("consolidated_at") or 0), every) >= every
