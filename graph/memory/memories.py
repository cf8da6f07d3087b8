"""Long-term memory: durable facts, preferences, decisions and results, kept for months.

Owns: the `memories` rows of agent.db (the source of truth: every memory ever made, with
its history of merges, replacements and forgetting), de-duplication and supersession on
add, scored search with decay, consolidation, forgetting and pinning, and indexing and
searching the transcript turns that left the conversation window; one `Memories` per session
and embedding model (`memories_of`: kept in the session's services, closed with them).
Does not own: embeddings and the Chroma index, or keeping it in step with SQLite and other
processes (vectors.py); when folded turns are indexed (backlog.py); deciding what to remember
(the reflect node), placing memories in the prompt (retrieval), the memory tools and CLI, or
the schema (store.py, migrations 0005 and 0008).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from graph.config import MemorySettings
from graph.context import Context
from graph.memory import vectors
from graph.memory.backlog import Backlog
from graph.store import Store

TYPES = ("fact", "preference", "decision", "result", "summary", "note")
REPLACEABLE = ("fact", "preference", "decision")  # a newer one of these replaces a similar older one
COLUMNS = ("id", "text", "type", "importance", "pinned", "source", "turn", "created", "updated",
           "last_used", "uses", "seen", "status", "replaced_by", "why")
INSERT = f"INSERT INTO memories ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
DAY = 86400.0
_now = time.time  # tests move the clock through this
MemoryUnavailable = vectors.MemoryUnavailable  # raised through Memories: callers catch it from here


@dataclass
class Memory:
    id: str
    text: str
    type: str
    importance: float
    pinned: bool
    source: str  # user | agent | auto
    turn: int | None
    created: float
    updated: float
    last_used: float | None
    uses: int
    seen: int
    status: str  # active | superseded | merged | forgotten | dropped
    replaced_by: str | None
    why: str | None
    similarity: float = 0.0  # filled by search
    score: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


class Memories:
    """The long-term memory of one data folder (a session's: `memories_of(ctx)`). Thread-safe."""

    def __init__(self, store: Store, settings: MemorySettings, model: str):
        self.cfg, self.model = settings, model
        self.store = store
        self.index = vectors.Index(store.path.parent, model, self.store)
        self.backlog = Backlog(self)  # turns waiting to be indexed, and the thread that indexes them

    def close(self) -> None:
        """Stop the indexing thread (after the batch it is writing) and close the index: the session ends."""
        self.backlog.stop()
        self.index.close()

    def _rows(self, where: str, args=()) -> list[Memory]:
        with self.store._lock:
            rows = self.store.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM memories WHERE {where}", args).fetchall()
        return [Memory(*r[:4], bool(r[4]), *r[5:]) for r in rows]

    def _active(self, ids) -> list[Memory]:
        """Those of these memories still active, oldest first (by primary key: fast at any size)."""
        ids = tuple(ids)
        rows = self._rows(f"id IN ({','.join('?' * len(ids))})", ids)
        return sorted((m for m in rows if m.status == "active"), key=lambda m: m.created)

    # --- memories ------------------------------------------------------------------------
    def add(self, text: str, type: str = "fact", importance: float = 0.5, pinned: bool = False,
            source: str = "agent", turn: int | None = None) -> tuple[Memory, str]:
        """Remember `text`. Returns the memory and what happened: "added", "merged" (it repeats an
        existing memory, which absorbs it) or "superseded" (it replaces an older, similar fact)."""
        text = text.strip()
        if not text:
            raise ValueError("a memory needs some text")
        if type not in TYPES:
            raise ValueError(f"unknown memory type {type!r}; use one of {', '.join(TYPES)}")
        importance = min(1.0, max(0.0, float(importance)))
        vec = vectors.vector(self.model, text)
        with self.index.writing():
            now, near = _now(), self._nearest(vec)
            if near and near[0][1] >= self.threshold("duplicate_similarity"):
                old = near[0][0]
                old.text, old.seen, old.updated, old.pinned = text, old.seen + 1, now, old.pinned or pinned
                old.importance = min(1.0, max(old.importance, importance) + 0.1)  # repetition signals importance
                with self.store.write() as db:
                    db.execute("UPDATE memories SET text=?, seen=?, updated=?, pinned=?, importance=? WHERE id=?",
                               (old.text, old.seen, now, int(old.pinned), old.importance, old.id))
                    self.index.put_memories([old.id], [vec], [old.type])
                return old, "merged"
            alike = [m for m, sim in near if m.type == type and sim >= self.threshold("supersede_similarity")]
            old = alike[0] if type in REPLACEABLE and alike else None
            m = Memory(self._new_id(), text, type, importance, bool(pinned), source, turn, now, now,
                       None, 0, 1, "active", None, None)
            with self.store.write() as db:
                self._insert(db, m, vec)
                if old:
                    db.execute("UPDATE memories SET status='superseded', replaced_by=?, why=?, updated=? WHERE id=?",
                               (m.id, f"replaced by a newer {type}", now, old.id))
                    self.index.drop_memories([old.id])
            return m, "superseded" if old else "added"

    def threshold(self, key: str) -> float:
        """memory.<key> (min_similarity, duplicate_similarity, supersede_similarity) as configured,
        or the value calibrated for this embedding model when it is "auto"."""
        if (value := getattr(self.cfg, key)) != "auto":
            return value
        return dict(zip(("min_similarity", "duplicate_similarity", "supersede_similarity"),
                        vectors.thresholds(self.model)))[key]

    def _nearest(self, vec, n: int = 10) -> list[tuple[Memory, float]]:
        """The n active memories most similar to `vec`, most similar first (a Chroma `where`
        filter would be slower than this: it scans the metadata of every memory)."""
        sims = self.index.nearest(vec, n)
        return sorted(((m, sims[m.id]) for m in self._active(sims)), key=lambda pair: -pair[1]) if sims else []

    def _new_id(self) -> str:
        while self._rows("id=?", (mid := secrets.token_hex(4),)):
            pass
        return mid

    def _insert(self, db, m: Memory, vec) -> None:
        db.execute(INSERT, tuple(getattr(m, c) for c in COLUMNS))
        self.index.put_memories([m.id], [vec], [m.type])

    def effective_importance(self, m: Memory, now: float | None = None) -> float:
        """Importance, halved every `half_life_days` without use or update; pinned memories never fade."""
        return m.importance if m.pinned else m.importance * self._fading(m, now)

    def _fading(self, m: Memory, now: float | None = None) -> float:
        age = max(0.0, (now or _now()) - max(m.updated, m.last_used or 0.0)) / DAY
        return 0.5 ** (age / self.cfg.half_life_days)

    def search(self, query: str, k: int | None = None, min_similarity: float | None = None,
               touch: bool = True) -> list[Memory]:
        """The active memories most worth recalling for `query`, best first: score = similarity x
        (0.5 + 0.5 x effective importance) x recency (1 when fresh, never under 0.5). `touch`
        marks them used, which keeps them from fading."""
        return self.recall(query, k, 0, min_similarity, touch)[0]

    def recall(self, query: str, k: int | None = None, turns: int = 0, min_similarity: float | None = None,
               touch: bool = True) -> tuple[list[Memory], list[dict]]:
        """search() and search_turns() for one query (k memories, `turns` past turns; both over
        min_similarity), with the query embedded once: what a turn's recall does."""
        k = self.cfg.recall_k if k is None else k
        floor = self.threshold("min_similarity") if min_similarity is None else min_similarity
        if (k <= 0 and turns <= 0) or not query.strip():
            return [], []
        vec = vectors.query_vector(self.model, query)
        with self.index.reading():
            sims = self.index.nearest(vec, 4 * k) if k > 0 else {}
            near = self.index.nearest_turns(vec, turns) if turns > 0 else {}
        return self._scored({i: sim for i, sim in sims.items() if sim >= floor}, k, touch), \
            self._past({t: sim for t, sim in near.items() if sim >= floor})

    def _scored(self, sims: dict[str, float], k: int, touch: bool) -> list[Memory]:
        """The k best of these active memories (search's score), marked used when `touch`."""
        now, found = _now(), self._active(sims) if sims else []
        for m in found:
            recency = 1.0 if m.pinned else 0.5 + 0.5 * self._fading(m, now)
            m.similarity = sims[m.id]
            m.score = m.similarity * (0.5 + 0.5 * self.effective_importance(m, now)) * recency
        found = sorted(found, key=lambda m: m.score, reverse=True)[:k]
        if touch and found:
            with self.store.write() as db:  # SQLite only: the index does not change
                db.executemany("UPDATE memories SET last_used=?, uses=uses+1 WHERE id=?", [(now, m.id) for m in found])
            for m in found:
                m.last_used, m.uses = now, m.uses + 1
        return found

    def _resolve(self, id: str) -> Memory:
        id = id.strip().lower()
        rows = self._rows("id=?", (id,)) or (self._rows("id LIKE ? LIMIT 5", (id + "%",)) if id else [])
        if not rows:
            raise KeyError(f"no memory with id {id!r} (see `memory list`)")
        if len(rows) > 1:
            raise KeyError(f"{id!r} matches several memories ({', '.join(m.id for m in rows)}); type more of the id")
        return rows[0]

    def get(self, id: str) -> Memory | None:
        """A memory by id, or by a unique beginning of its id, whatever its status."""
        try:
            return self._resolve(id)
        except KeyError:
            return None

    def list(self, status: str | None = "active", limit: int | None = None) -> list[Memory]:
        """Memories with this status (None: all), the most recently added or changed first."""
        args = ((status,) if status else ()) + (limit or -1,)
        return self._rows(f"{'status=?' if status else '1'} ORDER BY updated DESC, created DESC LIMIT ?", args)

    def forget(self, id: str) -> Memory:
        """Take a memory out of recall for good; its row stays, marked forgotten."""
        with self.index.writing():
            m = self._resolve(id)
            m.status, m.why, m.updated = "forgotten", "forgotten on request", _now()
            with self.store.write() as db:
                db.execute("UPDATE memories SET status=?, why=?, updated=? WHERE id=?", (m.status, m.why, m.updated, m.id))
                self.index.drop_memories([m.id])
            return m

    def pin(self, id: str, pinned: bool = True) -> Memory:
        """Pinned memories never fade and are never dropped."""
        m = self._resolve(id)
        m.pinned = pinned
        with self.store.write() as db:
            db.execute("UPDATE memories SET pinned=? WHERE id=?", (int(pinned), m.id))
        return m

    def counts(self) -> dict:
        """{status: number of memories}."""
        with self.store._lock:
            return dict(self.store.conn.execute("SELECT status, COUNT(*) FROM memories GROUP BY status").fetchall())

    # --- consolidation -------------------------------------------------------------------
    def consolidate(self, summarize: Callable[[list[str]], str] | None = None, full: bool = False) -> dict:
        """Fold each cluster of similar memories of one type into one summary (the summarizer, an
        LLM, runs outside the lock), then drop unused memories that have faded away. Memories
        added or changed since the last pass seed the clusters (`full`: all of them)."""
        started, merged, summaries = _now(), 0, 0
        since = 0.0 if full else float(self.store.get_meta("consolidated_at") or 0)
        seeds = [m.id for m in self._rows("status='active' AND updated>? ORDER BY created", (since,))]
        for ids in self.index.clusters(seeds, self.threshold("supersede_similarity")):
            group = self._active(ids)
            if len(group) < 2:
                continue
            text = _summary([m.text for m in group], summarize)
            vec = vectors.vector(self.model, text)
            with self.index.writing():
                if len(self._active(ids)) < len(group):
                    continue  # changed meanwhile (by another process): left for the next pass
                now = _now()
                s = Memory(self._new_id(), text, "summary", max(m.importance for m in group), any(m.pinned for m in group),
                           "auto", None, now, now, None, sum(m.uses for m in group), sum(m.seen for m in group),
                           "active", None, None)
                with self.store.write() as db:
                    self._insert(db, s, vec)
                    db.executemany("UPDATE memories SET status='merged', replaced_by=?, why=?, updated=? WHERE id=?",
                                   [(s.id, f"merged into summary {s.id}", now, m.id) for m in group])
                    self.index.drop_memories([m.id for m in group])
                merged, summaries = merged + len(group), summaries + 1
        with self.index.writing():
            now = _now()
            faded = [m.id for m in self._rows("status='active' AND pinned=0 AND uses=0")
                     if self.effective_importance(m, now) < 0.05]
            with self.store.write() as db:
                db.executemany("UPDATE memories SET status='dropped', why=?, updated=? WHERE id=?",
                               [("faded: never used, importance under 0.05", now, i) for i in faded])
                if faded:
                    self.index.drop_memories(faded)
                vectors.set_meta(db, "consolidated_at", started)
        return {"merged": merged, "summaries": summaries, "dropped": len(faded)}

    # --- transcript turns ----------------------------------------------------------------
    def index_turns(self, turns: list[int]) -> None:
        """Make past turns searchable (embedded in one call) and take them off the backlog: their
        user and assistant messages from the transcript, the same text a re-embedding reads back."""
        texts = self.index.turn_texts(min(turns), max(turns))
        texts = {t: texts[t].strip() for t in turns if texts.get(t, "").strip()}
        vecs = vectors.embedder(self.model)(list(texts.values())) if texts else []
        with self.index.writing():
            last = max([int(self.store.get_meta("turns_indexed") or 0), *texts])
            # before agent.db's transaction, which would hold up the turns meanwhile (a crash between
            # the two leaves them queued, and indexing them again replaces them); no documents (Chroma's
            # full-text index of them made a write 6 ms at 1k turns and 26 ms at 10k, and search_turns
            # reads the texts from the transcript) and no metadata (the id says the turn)
            if texts:
                self.index.turns.upsert(ids=[f"turn-{t}" for t in texts], embeddings=vecs)
            with self.store.write() as db:
                db.executemany("DELETE FROM turn_backlog WHERE turn=?", [(t,) for t in turns])
                vectors.set_meta(db, "turns_indexed", last)

    def search_turns(self, query: str, k: int = 3, min_similarity: float | None = None) -> list[dict]:
        """Past turns most similar to `query`: [{turn, text, similarity}], best first."""
        return self.recall(query, 0, k, min_similarity, touch=False)[1]

    def _past(self, near: dict[int, float]) -> list[dict]:
        """[{turn, text, similarity}] of these indexed turns, best first, with their text from the transcript."""
        found = sorted(near.items(), key=lambda item: item[1], reverse=True)
        texts = {t: text for turn, _ in found for t, text in self.index.turn_texts(turn, turn).items()}
        return [{"turn": turn, "text": texts[turn], "similarity": similarity}
                for turn, similarity in found if turn in texts]

    # --- the index -----------------------------------------------------------------------
    def reindex(self) -> None:
        """Re-embed every active memory and indexed turn from SQLite (what a change of model does)."""
        with self.index.writing():
            self.index.rebuild()


def _summary(texts: list[str], summarize: Callable[[list[str]], str] | None) -> str:
    """The summarizer's text, or the texts joined with "; " when it fails, says nothing or rambles."""
    joined = "; ".join(texts)
    try:
        text = str(summarize(texts) or "").strip() if summarize else ""
    except Exception:  # noqa: BLE001 - a failing summarizer (an LLM) must not lose memories
        text = ""
    return text if text and len(text) <= 1.5 * len(joined) + 100 else joined


def memories_of(ctx: Context) -> Memories:
    """The session's Memories for ctx's embedding model, opened on first use (its settings follow ctx)."""
    settings = ctx.settings.memory
    model = vectors.resolve_model(settings.embedding_model)
    memories = ctx.services.get(f"memories:{model}", lambda: Memories(ctx.store, settings, model))
    memories.cfg = settings
    return memories
