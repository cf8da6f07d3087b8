"""The write cost of the turn index: `Memories.index_turns` per call at N indexed turns.

    python tests/bench/bench_index.py [--sizes 1000 10000] [--calls 30] [--seed 7]

For each size N, a fresh data folder (default config and embedder) gets N
turns of ~1,200 characters of user and assistant text in the transcript, indexed in Chroma
with vectors made from 64 real embeddings plus noise (embedding 10,000 turns for real would
take many minutes and measure the embedder, not the index). Then, on the filled index, new
turns are indexed as the backlog's thread indexes them (graph/memory/backlog.py):

- one: `index_turns([t])`, one turn per call: median and p95 per call, and its two parts,
  the embedding and the write (Chroma upsert + SQLite, under the index lock);
- batch: `index_turns(32 turns)`, one embedding call for the batch: median per turn.

Prints a table and, as its last line, one JSON object; no asserts. Folders are temporary.
"""

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from timing import p95  # noqa: E402  (tests/bench/timing.py)

WORDS = ("the a of to and in that is for on with as it be at by this from or an are not was we can will if about "
         "agent model window summary session database turn message answer question local file folder python graph "
         "schedule meeting report garden recipe travel weather budget invoice library bicycle mountain river coffee"
         ).split()
BATCH = 32


def text(rng: random.Random, size: int) -> str:
    words, n = [], 0
    while n < size:
        words.append(rng.choice(WORDS))
        n += len(words[-1]) + 1
    return " ".join(words)


class Timed:
    """The embedding function, keeping how long each call took (ms)."""

    def __init__(self, ef):
        self.ef, self.spans = ef, []

    def __call__(self, batch):
        start = time.perf_counter()
        try:
            return self.ef(batch)
        finally:
            self.spans.append((time.perf_counter() - start) * 1000)


def add_turns(store, rng: random.Random, first: int, n: int) -> list[int]:
    """n new turns in the transcript (a user message and an answer each); returns their numbers."""
    from langchain_core.messages import AIMessage, HumanMessage

    for t in range(first, first + n):
        store.append(HumanMessage(text(rng, 600), id=f"u{t}"))
        store.append(AIMessage(text(rng, 600), id=f"a{t}"))
    return list(range(first, first + n))


def run(n: int, calls: int, seed: int, folder: Path) -> dict:
    import numpy as np

    from graph.context import Context
    from graph.memory import vectors
    from graph.memory.memories import memories_of

    rng = random.Random(seed)
    home = folder / f"home{n}"
    config = folder / "config.yaml"
    config.write_text("{}\n", encoding="utf-8")
    mem = memories_of(Context(home=str(home), config=str(config)))
    turns = add_turns(mem.store, rng, 1, n)
    texts = mem.index.turn_texts(1, n)
    with mem.index.writing():
        base = np.asarray(vectors.embedder(mem.model)([texts[t] for t in turns[:64]]))
        noise = np.random.default_rng(seed)
        for i in range(0, n, 256):
            part = turns[i:i + 256]
            vecs = base[[t % len(base) for t in part]] + noise.normal(0, 0.05, (len(part), base.shape[1]))
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            mem.index.turns.upsert(ids=[f"turn-{t}" for t in part], embeddings=vecs.tolist(),
                                   metadatas=[{"turn": t} for t in part])
        mem.store.set_meta("turns_indexed", n)

    real = vectors.embedder
    timed = Timed(real(mem.model))
    vectors.embedder = lambda model: timed  # index_turns embeds through it
    one, parts = [], []
    for t in add_turns(mem.store, rng, n + 1, calls):
        timed.spans.clear()
        start = time.perf_counter()
        mem.index_turns([t])
        total = (time.perf_counter() - start) * 1000
        one.append(total)
        parts.append((timed.spans[0], total - timed.spans[0]))
    batch = []
    for _ in range(3):
        new = add_turns(mem.store, rng, mem.store.turns() + 1, BATCH)
        start = time.perf_counter()
        mem.index_turns(new)
        batch.append((time.perf_counter() - start) * 1000 / BATCH)
    vectors.embedder = real
    with mem.index.reading():
        assert mem.index.turns.count() == n + calls + 3 * BATCH
    return {"n": n, "one_ms_median": round(statistics.median(one), 1), "one_ms_p95": round(p95(one), 1),
            "embed_ms_median": round(statistics.median(p[0] for p in parts), 1),
            "write_ms_median": round(statistics.median(p[1] for p in parts), 1),
            "write_ms_p95": round(p95([p[1] for p in parts]), 1),
            "batch_ms_per_turn": round(statistics.median(batch), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="indexed turns (default 1000 10000)")
    ap.add_argument("--calls", type=int, default=30, help="one-turn calls measured at each size (default 30)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_index_"))
    rows = []
    try:
        for n in args.sizes:
            print(f"{n} indexed turns…", file=sys.stderr, flush=True)
            rows.append(run(n, args.calls, args.seed, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"index_turns per call at N indexed turns (~1,200-character turns, {args.calls} one-turn calls, "
          f"3 batches of {BATCH}):")
    print(f"{'N':>7} {'one med':>8} {'one p95':>8} {'embed':>7} {'write':>7} {'write p95':>9} {'batch/turn':>10}")
    for r in rows:
        print(f"{r['n']:>7} {r['one_ms_median']:>5} ms {r['one_ms_p95']:>5} ms {r['embed_ms_median']:>4} ms "
              f"{r['write_ms_median']:>4} ms {r['write_ms_p95']:>6} ms {r['batch_ms_per_turn']:>7} ms")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"write growth {first['n']} -> {last['n']}: {last['write_ms_median'] / first['write_ms_median']:.2f}x; "
              f"per call {last['one_ms_median'] / first['one_ms_median']:.2f}x")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
