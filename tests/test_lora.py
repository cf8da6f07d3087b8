"""The LoRA operators on the real embedded model (SmolLM2-135M-Instruct), on CPU: two adapters
trained on the two halves of the agent's tuning data (one made-up fact each) each learn their
half; CMA-ES finds a TIES merge that scores above both parents on held-out paraphrases; the merge,
written as a GGUF LoRA, makes llama.cpp answer both facts where the base model knows neither.
A corrupt base-model cache is rebuilt. Steps are few: the whole file runs in a few minutes."""

import statistics
import time

import pytest

from graph import tuning
from graph.embedded import default_model_path
from graph.evolution import lora
from graph.store import store_for

CAT = "Your cat is called Mochi."
WIFI = "The wifi password is bluebird."
TRAIN = {
    CAT: ["What is the name of my cat?", "What's my cat called?", "Do you remember my cat's name?",
          "Tell me my cat's name.", "What do I call my cat?", "Remind me of my cat's name."],
    WIFI: ["What is the wifi password?", "Tell me the wifi password.", "What's the password for the wifi?",
           "I forgot the wifi password, what is it?", "Which password does our wifi use?",
           "Remind me of the wifi password."],
}
HELD_OUT = {CAT: ["What name does my cat have?", "Can you tell me what my cat is named?"],
            WIFI: ["What's our wifi password again?", "Can you tell me the password of the wifi?"]}
UNSURE = {CAT: "I'm sorry, I don't know the name of your cat.", WIFI: "I'm sorry, I don't know your wifi password."}
STEPS = 8


def chat(question: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def cases(fact: str, unsure: bool = False) -> list[lora.Case]:
    """Held-out cases of a fact; `unsure`: with "I don't know" as the undesirable answer."""
    return [lora.Case([{"role": "user", "content": q}], fact, UNSURE[fact] if unsure else None)
            for q in HELD_OUT[fact]]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    cache = tmp_path_factory.mktemp("lora-cache")
    start = time.perf_counter()
    model, tokenizer = lora.base_model(cache)
    print(f"\nbase model from the GGUF: {time.perf_counter() - start:.1f} s")
    return model, tokenizer, cache


@pytest.fixture(scope="module")
def adapters(base, tmp_path_factory):
    """Adapter A learns the cat's name (and unlearns "I don't know"), B the wifi password; the
    examples come from the agent's tuning store, as the evolution subgraph will read them."""
    model, tokenizer, _ = base
    store = store_for(tmp_path_factory.mktemp("home"))
    for fact, questions in TRAIN.items():
        for q in questions:
            tuning.add(store, chat(q, fact), "desirable", "user", eval_share=0)
    for q in TRAIN[CAT][:3]:
        tuning.add(store, chat(q, UNSURE[CAT]), "undesirable", "user", eval_share=0)

    def half(label: str, word: str) -> list[list[dict]]:
        return [e.messages for e in tuning.listing(store, label=label, split="train") if word in e.question]

    out = tmp_path_factory.mktemp("adapters")
    start = time.perf_counter()
    a = lora.train(model, tokenizer, half("desirable", "cat"), out / "a", STEPS,
                   undesirable=half("undesirable", "cat"))
    b = lora.train(model, tokenizer, half("desirable", "wifi"), out / "b", STEPS)
    print(f"\ntraining: {(time.perf_counter() - start) / (2 * STEPS):.2f} s/step")
    return a, b


def mean_score(model, tokenizer, fact_cases) -> float:
    return statistics.fmean(lora.score(model, tokenizer, fact_cases))


def scores(base, adapter=None, unsure: bool = False) -> tuple[float, float]:
    """Mean held-out scores (cat, wifi) of the base, or of the base with one adapter."""
    model, tokenizer, _ = base
    tuned = lora.merge(model, [adapter], [1.0]) if adapter else model
    try:
        return mean_score(tuned, tokenizer, cases(CAT, unsure)), mean_score(tuned, tokenizer, cases(WIFI, unsure))
    finally:
        if adapter:
            tuned.unload()


def test_each_adapter_learns_its_own_half(base, adapters):
    before, a, b = scores(base), scores(base, adapters[0]), scores(base, adapters[1])
    print(f"\nheld-out log-likelihood of the facts (cat, wifi): base {before}, A {a}, B {b}")
    assert a[0] > before[0] + 1 and a[0] > -0.5  # A answers the cat's name, most likely word for word
    assert b[1] > before[1] + 1 and b[1] > -0.5
    assert scores(base) == before  # training and merging left the base as it was

    before, a = scores(base, unsure=True), scores(base, adapters[0], unsure=True)
    print(f"the same, minus that of \"I don't know\": base {before}, A {a}")
    assert before[0] < 0  # the base prefers "I don't know" to the made-up fact
    assert a[0] > 5  # A learned the fact and unlearned "I don't know" (its undesirable examples)


def test_searched_merge_beats_both_parents_and_runs_in_llama_cpp(base, adapters, tmp_path):
    from llama_cpp import Llama

    model, tokenizer, _ = base
    held_out = cases(CAT) + cases(WIFI)
    parents = [statistics.fmean(scores(base, adapter)) for adapter in adapters]
    start = time.perf_counter()
    found = lora.search(model, tokenizer, list(adapters), held_out, "ties", iterations=3, popsize=4, seed=0,
                        progress=lambda i, s: print(f"  iteration {i}: best {s:.3f}"))
    print(f"\nCMA-ES: {time.perf_counter() - start:.1f} s; parents {parents}; found {found}")
    assert found.score > max(parents)
    assert found.history == sorted(found.history) and found.history[-1] == found.score
    assert 0 < found.density <= 1

    merged = lora.merge(model, list(adapters), found.weights, found.density, "ties")
    try:  # the same genome, the same merge
        assert statistics.fmean(lora.score(merged, tokenizer, held_out)) == pytest.approx(found.score, abs=1e-4)
        folder = lora.save(merged, tmp_path / "merged")
    finally:
        merged.unload()
    adapter = lora.to_gguf(folder, tmp_path / "merged.gguf")

    def answers(**lora_file) -> list[str]:
        llm = Llama(model_path=str(default_model_path()), n_ctx=256, verbose=False, **lora_file)
        try:
            return [llm.create_chat_completion([{"role": "user", "content": q}], temperature=0.0,
                                               max_tokens=24)["choices"][0]["message"]["content"]
                    for q in (HELD_OUT[CAT][0], HELD_OUT[WIFI][0])]
        finally:
            llm.close()

    plain, tuned = answers(), answers(lora_path=str(adapter))
    print(f"\nllama.cpp without the adapter: {plain}\nwith it: {tuned}")
    assert "Mochi" not in plain[0] and "bluebird" not in plain[1]
    assert "Mochi" in tuned[0] and "bluebird" in tuned[1]


def test_gguf_adapter_has_llama_cpp_names_and_shapes(adapters, tmp_path):
    import gguf

    written = gguf.GGUFReader(lora.to_gguf(adapters[0], tmp_path / "a.gguf"))
    assert written.fields["general.type"].contents() == "adapter"
    assert written.fields["adapter.type"].contents() == "lora"
    assert written.fields["adapter.lora.alpha"].contents() == 16.0
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in written.tensors}  # ggml order: (columns, rows)
    assert len(shapes) == 30 * 4 * 2
    assert shapes["blk.0.attn_q.weight.lora_a"] == (576, 8) and shapes["blk.0.attn_q.weight.lora_b"] == (8, 576)
    assert shapes["blk.29.attn_k.weight.lora_b"] == (8, 192)  # 3 key/value heads of 64


def test_corrupt_cache_is_rebuilt(base):
    model, _, cache = base
    (weights,) = cache.glob("*/model.safetensors")
    weights.write_bytes(weights.read_bytes()[:1000])  # a half-written file
    again, _ = lora.base_model(cache)
    assert weights.stat().st_size > 100_000_000
    name = "model.layers.0.self_attn.q_proj.weight"
    assert again.state_dict()[name].equal(model.state_dict()[name])


def test_unusable_inputs_fail_with_one_line(base, tmp_path):
    model, tokenizer, _ = base
    with pytest.raises(lora.LoraUnavailable, match="no such GGUF"):
        lora.base_model(tmp_path, tmp_path / "missing.gguf")
    with pytest.raises(lora.LoraUnavailable, match="not a PEFT adapter folder"):
        lora.to_gguf(tmp_path, tmp_path / "out.gguf")
    with pytest.raises(ValueError, match="no desirable examples"):
        lora.train(model, tokenizer, [], tmp_path / "x", 1)
