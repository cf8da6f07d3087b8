"""The LoRA operators on the real embedded model (SmolLM2-135M-Instruct), on CPU: two adapters
trained on the two halves of the agent's tuning data (one made-up fact each) each learn their
half; CMA-ES finds a TIES merge that scores above both parents on held-out paraphrases; the merge,
written as a GGUF LoRA, makes llama.cpp answer both facts where the base model knows neither.
The same model quantized to 4 bits (QLoRA) learns a fact as well. On a tiny random Qwen2 GGUF
(Ollama's qwen2 architecture, whose q/k rows llama.cpp does not reorder), a random adapter gives
llama.cpp the log-likelihoods it gives PEFT. A corrupt base-model cache is rebuilt. Steps are few:
the whole file runs in a few minutes."""

import statistics
import time

import numpy as np
import pytest

from graph.evolution import lora
from graph.learning import tuning
from graph.models.adapters import adapter_base, weights_id
from graph.models.embedded import default_model_path
from graph.models.llama_process import open_llama
from graph.models.vram import GiB
from graph.store import Store

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


def teach(store, held_out: bool = False) -> None:
    """The two facts as the user's desirable tuning examples (the training split); `held_out`: and
    the first held-out question of each in the evaluation split."""
    for fact, questions in TRAIN.items():
        for q in questions:
            tuning.add(store, chat(q, fact), "desirable", "user", eval_share=0)
    for fact in (CAT, WIFI) if held_out else ():
        tuning.add(store, chat(HELD_OUT[fact][0], fact), "desirable", "user", eval_share=1.0)


def cases(fact: str, unsure: bool = False) -> list[lora.Case]:
    """Held-out cases of a fact; `unsure`: with "I don't know" as the undesirable answer."""
    return [lora.Case([{"role": "user", "content": q}], fact, UNSURE[fact] if unsure else None)
            for q in HELD_OUT[fact]]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    cache = tmp_path_factory.mktemp("lora-cache")
    start = time.perf_counter()
    model, tokenizer = lora.base_model(cache, device="cpu")  # float32, on a GPU machine too
    print(f"\nbase model from the GGUF: {time.perf_counter() - start:.1f} s")
    return model, tokenizer, cache


@pytest.fixture(scope="module")
def adapters(base, tmp_path_factory):
    """Adapter A learns the cat's name (and unlearns "I don't know"), B the wifi password; the
    examples come from the agent's tuning store, as the evolution subgraph will read them."""
    model, tokenizer, _ = base
    store = Store(tmp_path_factory.mktemp("home"))
    teach(store)
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
        llm = open_llama(str(default_model_path()), n_ctx=256, verbose=False, **lora_file)
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

    path = lora.to_gguf(adapters[0], tmp_path / "a.gguf")
    embedded = default_model_path()
    assert adapter_base(path) == weights_id(embedded) == f"{embedded.name}:{embedded.stat().st_size}"
    written = gguf.GGUFReader(path)
    assert written.fields["general.type"].contents() == "adapter"
    assert written.fields["adapter.type"].contents() == "lora"
    assert written.fields["adapter.lora.alpha"].contents() == 16.0
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in written.tensors}  # ggml order: (columns, rows)
    assert len(shapes) == 30 * 4 * 2
    assert shapes["blk.0.attn_q.weight.lora_a"] == (576, 8) and shapes["blk.0.attn_q.weight.lora_b"] == (8, 576)
    assert shapes["blk.29.attn_k.weight.lora_b"] == (8, 192)  # 3 key/value heads of 64


def test_4bit_qlora_on_cpu_learns_and_runs_in_llama_cpp(base, tmp_path):
    """The 4-bit nf4 base (QLoRA's, as on CUDA) learns the cat's name as the float32 base does,
    stays as it was, and its adapter works in llama.cpp on the embedded GGUF."""

    start = time.perf_counter()
    model, tokenizer = lora.base_model(base[2], device="cpu", quantize=True)
    print(f"\n4-bit base from the cache: {time.perf_counter() - start:.1f} s")
    assert model.is_loaded_in_4bit and model.device.type == "cpu"
    before = mean_score(model, tokenizer, cases(CAT))
    start = time.perf_counter()
    adapter = lora.train(model, tokenizer, [chat(q, CAT) for q in TRAIN[CAT]], tmp_path / "q", STEPS)
    print(f"4-bit training: {(time.perf_counter() - start) / STEPS:.2f} s/step")
    tuned = lora.merge(model, [adapter], [1.0])
    try:
        after = mean_score(tuned, tokenizer, cases(CAT))
    finally:
        tuned.unload()
    print(f"held-out log-likelihood of the cat's name: 4-bit base {before:.3f}, with the adapter {after:.3f}")
    assert after > before + 1 and after > -0.5
    assert mean_score(model, tokenizer, cases(CAT)) == before

    llm = open_llama(str(default_model_path()), n_ctx=256, verbose=False,
                lora_path=str(lora.to_gguf(adapter, tmp_path / "q.gguf")))
    try:
        answer = llm.create_chat_completion([{"role": "user", "content": HELD_OUT[CAT][0]}], temperature=0.0,
                                            max_tokens=24)["choices"][0]["message"]["content"]
    finally:
        llm.close()
    assert "Mochi" in answer


def test_training_device_and_qlora_memory_estimate():
    import torch

    assert lora.training_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    sizes = [lora.qlora_vram_bytes(n) for n in (135_000_000, 1_500_000_000, 7_600_000_000, 70_000_000_000)]
    assert sizes == sorted(sizes)
    assert 5 * GiB < lora.qlora_vram_bytes(7_600_000_000) < 6 * GiB  # Qwen2-7B, on a 6 GB card


def test_the_4bit_base_of_an_untied_model_quantizes_its_lm_head_and_casts_nothing_up(tiny_qwen2, tmp_path):
    """QLoRA's memory: the LM head of a model that does not share it with the embeddings (Qwen2-7B:
    1 GB at 16 bits) is 4-bit too, nothing is cast to float32 beyond the compute dtype, nothing of
    the base trains, and the adapter still learns on it."""
    import bitsandbytes as bnb

    model, tokenizer = lora.base_model(tmp_path / "cache", tiny_qwen2, device="cpu", quantize=True)
    assert isinstance(model.lm_head, bnb.nn.Linear4bit) and isinstance(model.model.layers[0].self_attn.q_proj,
                                                                        bnb.nn.Linear4bit)
    assert not any(p.requires_grad for p in model.parameters())
    assert model.model.embed_tokens.weight.dtype == model.model.norm.weight.dtype == model.dtype
    made_up = [chat("What is the secret word?", "The secret word is bluebird.")]
    held = [lora.Case(made_up[0][:1], made_up[0][1]["content"])]
    before = lora.score(model, tokenizer, held)[0]
    adapter = lora.train(model, tokenizer, made_up, tmp_path / "a", steps=6, lr=1e-2)
    tuned = lora.merge(model, [adapter], [1.0])
    try:
        after = lora.score(tuned, tokenizer, held)[0]
    finally:
        tuned.unload()
    assert after > before + 1, (before, after)


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory):
    """A random Qwen2 model (2 layers, 4 query heads and 2 key/value heads of 16) as a float32 GGUF
    that llama.cpp loads, with SmolLM2's tokenizer. Its weights are float16 values, so that the
    float16 cache of `base_model` holds them exactly."""
    import gguf
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():  # larger than the default init, so that attention is far from uniform
        for name, weights in model.named_parameters():
            if "norm" not in name:
                weights.copy_((torch.randn_like(weights) * 0.2).half().float())
    path = tmp_path_factory.mktemp("qwen2") / "tiny-qwen2.gguf"
    writer = gguf.GGUFWriter(path, "qwen2")
    writer.add_block_count(2)
    writer.add_context_length(256)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    for key, field in gguf.GGUFReader(default_model_path()).fields.items():
        if key.startswith("tokenizer."):
            writer.add_key_value(key, field.contents(), field.types[0], field.types[-1] if len(field.types) > 1 else None)
    names = gguf.TensorNameMap(gguf.MODEL_ARCH.QWEN2, 2)
    for name, tensor in model.state_dict().items():  # no reordering of q/k rows: llama.cpp's Qwen2Model has none
        writer.add_tensor(names.get_name(name, try_suffixes=(".weight", ".bias")), tensor.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_qwen2_adapter_gives_llama_cpp_the_log_likelihoods_of_peft(tiny_qwen2, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    # transformers' GGUF loader, as for Ollama's qwen2 model
    model, tokenizer = lora.base_model(tmp_path / "cache", tiny_qwen2, device="cpu")
    assert type(model).__name__ == "Qwen2ForCausalLM"
    ids = tokenizer("The cat sat on the mat because it was warm, and then it slept until the evening.").input_ids

    def peft_logprobs(m) -> np.ndarray:
        with torch.no_grad():
            logits = m(torch.tensor([ids])).logits[0, :-1]
        return torch.log_softmax(logits, -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].numpy()

    def llama_cpp_logprobs(**lora_file) -> np.ndarray:
        llm = open_llama(str(tiny_qwen2), n_ctx=64, logits_all=True, verbose=False, **lora_file)
        try:
            llm.eval(ids)
            logits = np.array(llm.scores[:len(ids) - 1], dtype=np.float64)
        finally:
            llm.close()
        logits -= logits.max(-1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return logp[np.arange(len(ids) - 1), ids[1:]]

    base = peft_logprobs(model)
    assert np.abs(llama_cpp_logprobs() - base).max() < 0.02  # the same model on both sides

    torch.manual_seed(1)
    wrapped = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=lora.TARGETS, task_type="CAUSAL_LM"))
    try:
        with torch.no_grad():
            for name, weights in wrapped.named_parameters():
                if "lora_B" in name:
                    weights.normal_(0, 0.3)
        tuned = peft_logprobs(wrapped)
        wrapped.save_pretrained(tmp_path / "adapter")
    finally:
        wrapped.unload()
    adapter = lora.to_gguf(tmp_path / "adapter", tmp_path / "adapter.gguf", tiny_qwen2)
    in_llama_cpp = llama_cpp_logprobs(lora_path=str(adapter))
    print(f"\nmean |log p| change by the adapter: {np.abs(tuned - base).mean():.3f}; "
          f"llama.cpp vs PEFT, most: {np.abs(in_llama_cpp - tuned).max():.4f}")
    assert np.abs(tuned - base).mean() > 0.5  # reordered q/k rows (llama's) would be off by ~1
    assert np.abs(in_llama_cpp - tuned).max() < 0.02
    assert adapter_base(adapter) == weights_id(tiny_qwen2) == f"tiny-qwen2.gguf:{tiny_qwen2.stat().st_size}"


def test_adapter_base_of_a_bad_file_is_empty(tmp_path):
    (tmp_path / "text.gguf").write_text("not a GGUF file")
    (tmp_path / "empty.gguf").touch()
    for name in ("missing.gguf", "text.gguf", "empty.gguf"):
        assert adapter_base(tmp_path / name) == ""


def test_corrupt_cache_is_rebuilt(base):
    model, _, cache = base
    (weights,) = cache.glob("*/model.safetensors")
    weights.write_bytes(weights.read_bytes()[:1000])  # a half-written file
    again, _ = lora.base_model(cache, device="cpu")
    assert weights.stat().st_size > 100_000_000
    name = "model.layers.0.self_attn.q_proj.weight"
    assert again.state_dict()[name].equal(model.state_dict()[name])


def test_unusable_inputs_fail_with_one_line(base, tmp_path, monkeypatch):
    import importlib.util

    import torch

    model, tokenizer, _ = base
    with pytest.raises(lora.LoraUnavailable, match="no such GGUF"):
        lora.base_model(tmp_path, tmp_path / "missing.gguf", device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(lora.LoraUnavailable, match="no CUDA GPU"):
            lora.base_model(tmp_path, device="cuda")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "bitsandbytes" else find_spec(name))
    with pytest.raises(lora.LoraUnavailable, match=r"4-bit QLoRA needs bitsandbytes: pip install bitsandbytes=="):
        lora.base_model(tmp_path, device="cpu", quantize=True)
    with pytest.raises(lora.LoraUnavailable, match="not a PEFT adapter folder"):
        lora.to_gguf(tmp_path, tmp_path / "out.gguf")
    with pytest.raises(ValueError, match="no desirable examples"):
        lora.train(model, tokenizer, [], tmp_path / "x", 1)


def test_unknown_architectures_are_refused(adapters, tmp_path):
    import gguf

    writer = gguf.GGUFWriter(tmp_path / "phi3.gguf", "phi3")  # an architecture not in PERMUTES_QK
    writer.add_block_count(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(lora.LoraUnavailable, match="phi3 base models are not supported"):
        lora.to_gguf(adapters[0], tmp_path / "out.gguf", tmp_path / "phi3.gguf")
    assert not (tmp_path / "out.gguf").exists()
