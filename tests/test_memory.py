"""Long-term memory (graph/memory/memories.py, graph/memory/vectors.py) with the real Chroma index and the bundled
embedders (the multilingual default, MiniLM where a test changes the model). The embedder is loaded once per test process (vectors.py caches it), so the file stays fast."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from graph.context import Context, Services
from graph.memory import memories, vectors
from graph.memory.memories import TYPES, MemoryUnavailable, memories_of

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0


@pytest.fixture
def ctx(tmp_path, make_config):
    """Contexts of one session (they share its services) that differ in their memory settings."""
    session = Services()

    def make(**settings) -> Context:
        return Context(home=str(tmp_path / "home"), config=str(make_config({"memory": settings})), services=session)
    return make


@pytest.fixture
def mem(ctx):
    return memories_of(ctx())


@pytest.fixture
def clock(monkeypatch):
    """Move memories.py's clock: clock(days) puts it that many days after the real now."""
    import time
    start = time.time()

    def move(days: float) -> None:
        monkeypatch.setattr(memories, "_now", lambda: start + days * DAY)
    move(0)
    return move


def texts(found) -> list[str]:
    return [m.text for m in found]


def test_add_then_search_finds_it_with_scores(mem):
    m, what = mem.add("The user's favourite editor is Vim", "preference", importance=0.8, source="user", turn=3)
    mem.add("The project deadline is March 3rd", "fact")
    assert what == "added" and len(m.id) == 8 and m.turn == 3 and m.source == "user"
    found = mem.search("Which text editor does the user prefer?")
    assert found[0].id == m.id and 0 < found[0].score <= found[0].similarity <= 1
    assert found[0].uses == 1 and found[0].last_used  # touched
    assert mem.get(m.id).uses == 1
    assert mem.search("Which text editor?", touch=False)[0].uses == 1
    assert mem.search("quantum chromodynamics lattice") == []  # under min_similarity
    assert m.as_dict()["text"] == "The user's favourite editor is Vim" and m.as_dict()["status"] == "active"


def test_bad_input_is_refused(mem):
    with pytest.raises(ValueError, match="fact, preference"):
        mem.add("something", "opinion")
    with pytest.raises(ValueError):
        mem.add("   ")
    assert mem.add("The sky is blue", importance=7)[0].importance == 1.0
    assert set(TYPES) == {"fact", "preference", "decision", "result", "summary", "note"}


def test_other_processes_see_each_others_memories(mem, ctx):
    mem.add("The user lives in Kyoto", "fact")
    assert texts(mem.search("Where does the user live?")) == ["The user lives in Kyoto"]  # index open here
    c = ctx()
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            "from graph.context import Context\nfrom graph.memory.memories import memories_of\n"
            f"mem = memories_of(Context(home={c.home!r}, config={c.config!r}))\n"
            "print('found:', [m.text for m in mem.search('Where does the user live?')])\n"
            "print('added:', mem.add('The user has a cat called Miso', 'fact')[1])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert "found: ['The user lives in Kyoto']" in out.stdout, out.stderr[-2000:]
    assert "added: added" in out.stdout
    assert texts(mem.search("What is the cat's name?")) == ["The user has a cat called Miso"]
    assert mem.counts() == {"active": 2}


def test_memories_are_searched_exactly_and_kept_in_step(mem, ctx, monkeypatch):
    """The memories' vectors are read once and searched exactly: Chroma's own query ranks them the
    same, also after memories are added, merged, superseded and forgotten (the kept vectors follow
    each change, they are not read again); past vectors.EXACT memories the search is Chroma's."""
    def same_as_chroma(query: str) -> None:
        vec = vectors.query_vector(mem.model, query)
        with mem.index.reading():
            exact = mem.index.nearest(vec, 5)
            chroma = mem.index.mems.query(query_embeddings=[vec], n_results=5, include=["distances"])
        assert list(exact) == chroma["ids"][0]
        assert all(abs(exact[i] - (1.0 - d)) < 1e-4 for i, d in zip(chroma["ids"][0], chroma["distances"][0]))

    for text in ("I live in Tokyo", "The user's bicycle is a blue Brompton", "Deploys happen on Fridays",
                 "The user drinks green tea in the morning", "The project's database is SQLite"):
        mem.add(text, "fact")
    same_as_chroma("What does the user ride to work?")
    reads = []
    monkeypatch.setattr(type(mem.index.mems), "get", lambda self, *a, **k: reads.append(1) or {})
    from langchain_core.messages import AIMessage, HumanMessage
    store = ctx().store
    store.append(HumanMessage("How do I bake sourdough bread?", id="u1"))
    store.append(AIMessage("Feed the starter, mix, fold, proof overnight.", id="a1"))
    mem.index_turns([1])
    assert mem.add("The user's cat is called Miso", "fact")[1] == "added"
    assert mem.add("The user's cat is called Miso", "fact")[1] == "merged"
    assert mem.add("I live in Osaka", "fact")[1] == "superseded"
    assert texts(mem.search("What is the cat called?"))[0] == "The user's cat is called Miso"
    assert texts(mem.search("Where do I live?")) == ["I live in Osaka"]
    mem.forget(mem.search("What is the cat called?")[0].id)
    assert "The user's cat is called Miso" not in texts(mem.search("What is the cat called?"))
    assert reads == []  # nothing was read from the index again
    monkeypatch.undo()
    for query in ("What does the user ride to work?", "Where do I live?", "What is the cat called?"):
        same_as_chroma(query)
    monkeypatch.setattr(vectors, "EXACT", 3)
    mem.add("The user's sister works in a bakery", "fact")  # past EXACT: the kept vectors are let go
    assert mem.index._vectors is False
    same_as_chroma("Where does the user's sister work?")


def test_near_duplicate_is_merged_not_stacked(mem):
    first, _ = mem.add("I like coffee", "preference", importance=0.4)
    again, what = mem.add("I love coffee", "preference", importance=0.4, pinned=True)
    assert what == "merged" and again.id == first.id
    m = mem.get(first.id)
    assert m.seen == 2 and m.text == "I love coffee" and m.pinned and 0.4 < m.importance <= 1
    assert mem.counts() == {"active": 1}
    assert texts(mem.search("coffee")) == ["I love coffee"]


def test_newer_fact_supersedes_older_one_and_keeps_history(mem):
    tokyo, _ = mem.add("I live in Tokyo", "fact")
    osaka, what = mem.add("I live in Osaka", "fact")
    assert what == "superseded"
    old = mem.get(tokyo.id)
    assert old.status == "superseded" and old.replaced_by == osaka.id and "newer fact" in old.why
    assert texts(mem.search("Where do I live?")) == ["I live in Osaka"]
    assert [m.text for m in mem.list(None)] == ["I live in Osaka", "I live in Tokyo"]
    assert texts(mem.list()) == ["I live in Osaka"]
    assert mem.counts() == {"active": 1, "superseded": 1}


def test_related_but_different_memories_stay_apart(mem):
    mem.add("I like coffee", "preference")
    _, what = mem.add("I like tea", "preference")
    assert what == "added" and mem.counts() == {"active": 2}
    _, what = mem.add("I live in Osaka", "note")  # notes never replace anything
    assert what == "added"


def test_memories_fade_unless_pinned_or_used(mem, clock):
    old, _ = mem.add("The staging server is called bluebird", "fact", importance=0.8)
    kept, _ = mem.add("The user's birthday is May 5th", "fact", importance=0.8, pinned=True)
    used, _ = mem.add("The office wifi password is on the fridge", "fact", importance=0.8)
    assert mem.effective_importance(mem.get(old.id)) == pytest.approx(0.8)
    clock(30)  # one half-life
    assert mem.effective_importance(mem.get(old.id)) == pytest.approx(0.4)
    assert mem.search("Where is the wifi password?", k=1)[0].id == used.id  # using it renews it
    clock(60)
    assert mem.effective_importance(mem.get(old.id)) == pytest.approx(0.2)
    assert mem.effective_importance(mem.get(kept.id)) == pytest.approx(0.8)
    assert mem.effective_importance(mem.get(used.id)) == pytest.approx(0.4)
    assert mem.effective_importance(mem.get(old.id), now=memories._now() + 30 * DAY) == pytest.approx(0.1)
    # score = similarity x (0.5 + 0.5 x effective importance) x recency (0.5 + 0.5 x 0.5 ** (age / half-life))
    found = mem.search("What is the staging server called?", k=1, touch=False)[0]
    assert found.id == old.id and found.score == pytest.approx(found.similarity * 0.6 * 0.625)
    assert mem.search("When is the birthday?", k=1, touch=False)[0].score > 0.9 * found.similarity * 0.9


def test_forget_pin_and_id_prefixes(mem):
    a, _ = mem.add("The user's dog is called Rex", "fact")
    b, _ = mem.add("Deploys happen on Fridays", "decision")
    assert mem.get(a.id[:4]).id == a.id and mem.get(a.id.upper()).id == a.id
    assert mem.get("zz") is None
    assert mem.pin(b.id[:5]).pinned and mem.get(b.id).pinned
    assert not mem.pin(b.id, False).pinned
    gone = mem.forget(a.id[:6])
    assert gone.status == "forgotten" and mem.get(a.id).status == "forgotten"
    assert mem.search("What is the dog's name?") == []
    assert texts(mem.list("forgotten")) == ["The user's dog is called Rex"]
    with pytest.raises(KeyError, match="no memory"):
        mem.forget("nothere")


def test_ambiguous_prefix_is_refused(mem, monkeypatch):
    ids = iter(["abcd0001", "abcd0002"])
    monkeypatch.setattr(mem, "_new_id", lambda: next(ids))
    mem.add("Alpha is the first letter", "note")
    mem.add("Omega is the last letter", "note")
    monkeypatch.undo()
    with pytest.raises(KeyError, match="several"):
        mem.forget("abcd")
    assert mem.get("abcd") is None and mem.get("abcd0002").text == "Omega is the last letter"


CLUSTERS = [("Backups run every night at 2am", "The backup job runs nightly at 2 am"),
            ("The test suite takes 40 seconds", "Running the tests takes about 40 seconds")]


@pytest.mark.parametrize("summarize, expected", [
    (lambda texts: "Backups: nightly at 2am" if "ackup" in texts[0] else "Tests: 40 s", ["Backups: nightly at 2am", "Tests: 40 s"]),
    (lambda texts: 1 / 0, ["; ".join(CLUSTERS[0]), "; ".join(CLUSTERS[1])]),
    (lambda texts: "x" * 10000, ["; ".join(CLUSTERS[0]), "; ".join(CLUSTERS[1])]),
    (None, ["; ".join(CLUSTERS[0]), "; ".join(CLUSTERS[1])]),
])
def test_consolidation_folds_clusters_into_summaries(mem, summarize, expected):
    members = [mem.add(t, "result", importance=0.3 + 0.1 * i)[0] for pair in CLUSTERS for i, t in enumerate(pair)]
    mem.add("The user prefers dark mode", "preference", pinned=True)
    assert mem.consolidate(summarize) == {"merged": 4, "summaries": 2, "dropped": 0}
    summaries = mem.list("active")
    assert sorted(m.text for m in summaries if m.type == "summary") == sorted(expected)
    assert all(m.source == "auto" and m.importance == pytest.approx(0.4) for m in summaries if m.type == "summary")
    assert {mem.get(m.id).status for m in members} == {"merged"}
    assert mem.get(members[0].id).replaced_by in {m.id for m in summaries}
    assert mem.search("When do backups run?", k=1)[0].type == "summary"
    assert mem.consolidate(summarize) == {"merged": 0, "summaries": 0, "dropped": 0}  # nothing new


def test_consolidation_drops_faded_unused_memories(mem, clock):
    faded, _ = mem.add("The cafeteria served curry once", "note", importance=0.2)
    used, _ = mem.add("The VPN address is vpn.example.com", "fact", importance=0.2)
    pinned, _ = mem.add("The user is allergic to peanuts", "fact", importance=0.2, pinned=True)
    mem.search("What is the VPN address?", k=1)
    assert mem.consolidate() == {"merged": 0, "summaries": 0, "dropped": 0}
    clock(200)  # 0.2 * 0.5 ** (200 / 30) < 0.05
    assert mem.consolidate() == {"merged": 0, "summaries": 0, "dropped": 1}
    assert mem.get(faded.id).status == "dropped" and "faded" in mem.get(faded.id).why
    assert mem.get(used.id).status == mem.get(pinned.id).status == "active"
    assert mem.search("cafeteria curry", touch=False) == []


def test_past_turns_are_searchable(mem, ctx):
    from langchain_core.messages import AIMessage, HumanMessage
    store = ctx().store
    store.append(HumanMessage("How do I bake sourdough bread?", id="u1"))
    store.append(AIMessage("Feed the starter, mix, fold, proof overnight, bake at 250C.", id="a1"))
    store.append(HumanMessage("What's a good name for a goldfish?", id="u2"))
    store.append(AIMessage("Bubbles or Finn.", id="a2"))
    mem.index_turns([1])  # read from the transcript
    mem.index_turns([2])
    hits = mem.search_turns("baking bread at home")
    assert hits[0]["turn"] == 1 and hits[0]["text"].startswith("User: How do I bake sourdough") and "250C" in hits[0]["text"]
    assert 0 < hits[0]["similarity"] <= 1
    assert mem.search_turns("pet fish names", k=1)[0]["turn"] == 2
    assert mem.store.get_meta("turns_indexed") == "2"


def test_changing_the_model_reembeds_everything(mem, ctx, tmp_path):
    from langchain_core.messages import AIMessage, HumanMessage
    mem.add("The user's favourite colour is green", "preference")
    gone, _ = mem.add("The old password hint is 'river'", "note")
    mem.forget(gone.id)
    store = ctx().store
    store.append(HumanMessage("Plan a trip to Hokkaido in winter", id="u1"))
    store.append(AIMessage("Sapporo snow festival, then Otaru.", id="a1"))
    mem.index_turns([1])
    other = tmp_path / "other-model"
    other.symlink_to(vectors.resolve_model(vectors.MINILM))  # from the default to MiniLM under another name
    moved = memories_of(ctx(embedding_model=str(other)))
    assert moved is not mem and moved.model == str(other)
    assert texts(moved.search("What colour does the user like?")) == ["The user's favourite colour is green"]
    assert moved.store.get_meta("embedding_model") == str(other)
    assert moved.search_turns("winter travel in Japan")[0]["turn"] == 1
    assert moved.counts() == {"active": 1, "forgotten": 1} and moved.index.mems.count() == 1


def test_an_older_index_gets_the_sync_threshold_and_keeps_its_entries(mem, ctx):
    """An index written with Chroma's default sync threshold (1000: each write then costs more as the
    index grows) is switched to vectors.SYNC when it is opened, with nothing re-embedded or lost."""
    from langchain_core.messages import AIMessage, HumanMessage
    mem.add("The printer is on the third floor", "fact")
    mem.store.append(HumanMessage("Where can I print my boarding pass?", id="u1"))
    mem.store.append(AIMessage("The printer is on the third floor.", id="a1"))
    mem.index_turns([1])
    with mem.index.writing():
        for collection in (mem.index.mems, mem.index.turns):
            collection.modify(configuration={"hnsw": {"sync_threshold": 1000}})
    ctx().services.close()  # as the process ends
    again = memories_of(ctx())
    with again.index.reading():
        assert [c.configuration_json["hnsw"]["sync_threshold"] for c in (again.index.mems, again.index.turns)] == \
            [vectors.SYNC, vectors.SYNC]
    assert texts(again.search("Where is the printer?")) == ["The printer is on the third floor"]
    assert again.search_turns("printing a boarding pass")[0]["turn"] == 1


def test_deleted_index_is_rebuilt_from_sqlite(mem, ctx):
    import shutil
    mem.add("The printer is on the third floor", "fact")
    from langchain_core.messages import AIMessage, HumanMessage
    store = ctx().store
    store.append(HumanMessage("Where can I print my boarding pass?", id="u1"))
    store.append(AIMessage("The printer is on the third floor.", id="a1"))
    mem.index_turns([1])  # from the transcript: what a rebuild reads back
    ctx().services.close()  # as the process ends
    shutil.rmtree(Path(ctx().home) / "memory")
    again = memories_of(ctx())
    assert texts(again.search("Where is the printer?")) == ["The printer is on the third floor"]
    assert again.search_turns("printing a boarding pass")[0]["turn"] == 1


def test_a_query_is_embedded_once_for_memories_and_turns(mem, monkeypatch):
    from langchain_core.messages import AIMessage, HumanMessage
    mem.add("The user's cat is called Mochi", "fact")
    mem.store.append(HumanMessage("my cat Mochi likes tuna", id="u1"))
    mem.store.append(AIMessage("Noted.", id="a1"))
    mem.index_turns([1])
    calls = []
    ef = vectors.embedder(mem.model)
    real = type(ef).__call__
    monkeypatch.setattr(type(ef), "__call__", lambda self, texts: calls.append(list(texts)) or real(self, texts))
    vectors.query_vector.cache_clear()
    assert texts(mem.search("What is my cat called?")) == ["The user's cat is called Mochi"]
    assert mem.search_turns("What is my cat called?")[0]["turn"] == 1  # the same text: embedded once
    mem.search("What does my cat eat?", touch=False)  # another text: embedded
    assert calls == [["What is my cat called?"], ["What does my cat eat?"]]


def test_japanese_memories(mem):
    tokyo, _ = mem.add("東京に住んでいます", "fact")
    mem.add("コーヒーが好きです", "preference")
    mem.add("The meeting is on Monday", "fact")
    assert mem.search("どこに住んでいますか", k=1)[0].id == tokyo.id
    assert mem.search("好きな飲み物はコーヒー", k=1)[0].text == "コーヒーが好きです"


def test_japanese_and_english_find_each_other_by_default(mem):
    """The default embedder is multilingual: a Japanese question finds an English memory and the reverse."""
    cat, _ = mem.add("猫の名前はモチです", "fact")
    flight, _ = mem.add("The user's flight to London leaves on August 3rd", "fact")
    mem.add("The test suite takes 40 seconds", "result")
    mem.add("毎月5万円を貯金している", "fact")
    assert mem.search("ペットは何て名前だっけ？", k=1)[0].id == cat.id
    assert mem.search("What is my cat called?", k=1)[0].id == cat.id
    assert mem.search("イギリスへ出発する日は？", k=1)[0].id == flight.id
    assert mem.threshold("min_similarity") == vectors.thresholds(vectors.USE)[0] < 0.3  # calibrated for it


def test_configured_thresholds_beat_the_calibrated_ones(ctx):
    strict = memories_of(ctx(min_similarity=0.99, supersede_similarity=0.5))
    strict.add("猫の名前はモチです", "fact")
    assert strict.search("ペットは何て名前だっけ？") == []
    assert strict.threshold("supersede_similarity") == 0.5 and strict.threshold("duplicate_similarity") == 0.93


def test_bad_embedding_model_is_one_clear_line(ctx, tmp_path):
    bad = memories_of(ctx(embedding_model=str(tmp_path / "no-such-model")))
    with pytest.raises(MemoryUnavailable) as err:
        bad.search("anything")
    message = str(err.value)
    assert "\n" not in message and "memory.embedding_model" in message and "no-such-model" in message
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(MemoryUnavailable, match="memory.embedding_model"):
        memories_of(ctx(embedding_model=str(empty))).add("anything")


def test_importing_memory_is_cheap():
    code = ("import sys, graph.memory.memories; bad = {'torch', 'chromadb', 'sentence_transformers'} & set(sys.modules); "
            "print(sorted(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.stdout.strip() == "[]", out.stderr
    assert os.environ.get("AGENT_HOME")  # conftest isolates the data folder
