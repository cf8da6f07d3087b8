"""Evolved LoRA adapters on the Ollama model (graph/models/adapters.py, and the LoRA stage when Ollama
serves): the adapters are trained on the weights behind the Ollama model (its Modelfile's FROM),
each becomes an Ollama model made with FROM + ADAPTER (`/api/create`, the real ollama client over
real HTTP to tests/ollama_server.py, which answers with llama.cpp and the uploaded adapter); a
promoted one answers the next turn; an adapter is never served on weights it was not made for;
and a model that cannot be trained here says why."""

from pathlib import Path

import gguf
import pytest

from graph.config import load_settings
from graph.context import Context
from graph.evolution import adapt, archive, lora
from graph.evolution.nodes.adapt import adapt as adapt_node
from graph.learning import selfprompt, tuning
from graph.models import adapters, llm
from ollama_server import ABSENT_QWEN2_BLOB, OllamaServer

SMALL = "smollm2:135m"  # served with the SmolLM2 weights that really answer
QWEN2 = "qwen2:7b-instruct"  # its weights are not on this machine


@pytest.fixture(scope="module")
def server():
    with OllamaServer(models=[SMALL, QWEN2]) as server:
        yield server


def context(tmp_path, make_config, server, model, **evolution):
    config = make_config({"llm": {"backend": "ollama", "max_tokens": 32, "temperature": 0,
                                  "ollama": {"base_url": server.url, "model": model, "num_ctx": 2048}},
                          "reasoning": {"mode": "off"}, "memory": {"enabled": False},
                          "agent": {"max_tool_rounds": 0}, "evolution": evolution})
    return Context(home=str(tmp_path / "home"), config=str(config), cwd=str(tmp_path))


def test_ollama_adapters_are_made_with_from_and_adapter_and_a_promoted_one_answers_the_next_turn(
        tmp_path, make_config, server):
    from test_lora import CAT, HELD_OUT, teach

    from graph.evolution import graph as evolution
    from graph.evolution.runs import promote_genome_by_hand
    from graph.session import Session

    ctx = context(tmp_path, make_config, server, SMALL, eval_cases=2, lora="on", lora_steps=8, lora_iterations=2,
                  answer_tokens=24, budget_minutes=60)  # every genome scored on a busy machine too (5 min did not)
    store = ctx.store
    teach(store, held_out=True)
    assert adapt.trainable(ctx) == ""

    result = evolution.evolve(ctx, "test", generations=1, population=2)
    assert result["status"] == "done"
    genomes = [g for g in archive.of_run(store, result["id"]) if g.lora]
    assert sorted(g.operator for g in genomes) == ["lora:merge:ties", "lora:mutate", "lora:train", "lora:train"]
    assert all(g.status in ("scored", "promoted") and len(g.scores) == 2 for g in genomes)
    # each adapter was recorded as made for the weights behind the Ollama model, and made into an Ollama model
    weights = Path(server.weights[SMALL])
    assert all(adapters.adapter_base(g.lora) == adapters.weights_id(weights) for g in genomes)
    names = {adapters.ollama_name(ctx.settings, g.lora): g for g in genomes}
    assert {b["model"] for b in server.created} == set(names) and all(b["from"] == SMALL for b in server.created)
    assert all(len(b["adapters"]) == 1 for b in server.created)
    scored_on = {r["model"] for r in server.requests}
    assert set(names) <= scored_on  # every adapter answered its cases through its own Ollama model

    [merge] = [g for g in genomes if g.operator == "lora:merge:ties"]
    if archive.get(store, merge.id).status != "promoted":  # the small judge may have preferred another one
        promote_genome_by_hand(ctx, merge.id)
    session = Session(ctx)
    assert session.backend.model == f"{SMALL} + evolved LoRA"
    list(session.turn(HELD_OUT[CAT][1]))
    assert server.requests[-1]["model"] == adapters.ollama_name(ctx.settings, merge.lora)
    assert "Mochi" in session.store.history()[-1]["content"]

    selfprompt.rollback(ctx, "the user was less happy")
    list(session.turn("Thanks."))
    assert server.requests[-1]["model"] == SMALL and session.backend.model == SMALL

    # the next run's pruning deletes this run's adapters and their Ollama models, except the one serving
    promote_genome_by_hand(ctx, merge.id)
    adapt.prune(ctx, result["id"] + 1)
    kept = adapters.ollama_name(ctx.settings, merge.lora)
    assert kept in server.models and Path(merge.lora).is_file()
    assert not set(names) - {kept} & set(server.models)
    assert all(not Path(g.lora).exists() for g in genomes if g is not merge)


def _adapter(path: Path, base: str) -> str:
    """An (empty) GGUF LoRA recorded as made for the weights `base`."""
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string("agent.lora.base", base)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(path)


def test_an_adapter_is_never_served_on_weights_it_was_not_made_for(tmp_path, make_config, server):
    other = _adapter(tmp_path / "other.gguf", "some-other-model.gguf:12345")
    embedded = load_settings(make_config({"llm": {"backend": "embedded"}}, "embedded.yaml"))
    backend = llm.resolve(embedded, other)
    assert backend.chat.lora_path == "" and not backend.model.endswith("LoRA")
    assert "was not made for" in backend.notice and "answering without it" in backend.notice
    with pytest.raises(adapters.AdapterError, match="was not made for"):
        llm.embedded_backend(embedded, other, strict=True)  # an evolved variant is never scored without its adapter

    ctx = context(tmp_path, make_config, server, QWEN2)
    backend = llm.resolve(ctx.settings, other)
    assert backend.chat.model == QWEN2 and "not a file readable here" in backend.notice
    small = context(tmp_path, make_config, server, SMALL).settings
    assert "is gone; answering without it" in llm.resolve(small, str(tmp_path / "deleted.gguf")).notice


def test_a_model_that_cannot_be_trained_here_says_why(tmp_path, make_config, server, monkeypatch):
    assert adapt.trainable(context(tmp_path, make_config, server, SMALL)) == ""
    why = adapt.trainable(context(tmp_path, make_config, server, QWEN2))
    assert ABSENT_QWEN2_BLOB in why and "not a file readable here" in why

    ctx = context(tmp_path, make_config, server, SMALL)
    monkeypatch.setattr(adapt, "CPU_MAX_PARAMETERS", 100_000_000)
    assert "on the CPU would take hours; it needs a CUDA GPU (4-bit QLoRA)" in adapt.trainable(ctx)
    monkeypatch.setattr(lora, "training_device", lambda: "cuda")
    monkeypatch.setattr(adapt.vram, "gpu_memory", lambda: (2 * 2**30, 6 * 2**30))
    assert adapt.trainable(ctx) == ""  # 135M parameters fit a 6 GB card
    monkeypatch.setattr(lora, "qlora_vram_bytes", lambda count: 7 * 2**30)
    assert adapt.trainable(ctx) == "4-bit QLoRA for smollm2:135m (0.13B parameters) needs about 7.00 GiB of GPU " \
                                   "memory; the GPU has 6.00 GiB"


def test_on_a_gpu_ollama_unloads_the_chat_model_for_training_and_running_out_of_memory_skips_the_adapters(
        tmp_path, make_config, server, monkeypatch):
    """With CUDA, training goes between unloading Ollama's chat model and loading it back (even when
    it fails); a GPU too small after all makes the stage skipped with the reason (`lora: auto`), and
    the prompt variants evolve on."""
    import types

    import torch

    ctx = context(tmp_path, make_config, server, SMALL, lora_min_examples=2)
    store = ctx.store
    for i in range(2):
        tuning.add(store, [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"A{i}."}],
                   "desirable", "user", eval_share=0)
        tuning.add(store, [{"role": "user", "content": f"R{i}?"}, {"role": "assistant", "content": f"B{i}."}],
                   "desirable", "user", eval_share=1.0)
    monkeypatch.setattr(lora, "training_device", lambda: "cuda")
    monkeypatch.setattr(adapt.vram, "gpu_memory", lambda: None)
    unloaded = []

    def out_of_memory(*args):
        unloaded.append([(g["model"], g["keep_alive"]) for g in server.generates])
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.16 GiB")

    monkeypatch.setattr(adapt, "_breed", out_of_memory)
    server.generates.clear()
    run = archive.start(store, "test", {})
    seen = []
    runtime = types.SimpleNamespace(context=ctx, stream_writer=seen.append)
    assert adapt_node({"run": run, "members": [1]}, runtime) == {}
    assert unloaded == [[(SMALL, 0)]]  # the chat model was out of the GPU while training
    assert [(g["model"], g["keep_alive"]) for g in server.generates] == [(SMALL, 0), (SMALL, "5m")]  # and back
    assert seen[-1]["evolution"]["stage"] == "adapters skipped"
    assert seen[-1]["evolution"]["why"] == f"out of GPU memory training adapters for {SMALL}"


def test_when_ollama_refuses_adapter_models_the_next_runs_train_none_until_ollama_changes(
        tmp_path, make_config, server):
    """Ollama 0.34.1 and later are reported to refuse ADAPTER: the refusal (with Ollama's words and
    version) marks the genome invalid, and later runs skip the adapters with it instead of training
    adapters that cannot be served, until another Ollama version serves."""
    from graph.evolution.archive import Genome

    ctx = context(tmp_path, make_config, server, SMALL)
    store = ctx.store
    adapter = _adapter(tmp_path / "adapter.gguf", adapters.weights_id(Path(server.weights[SMALL])))
    server.refuse_adapters = "adapters are not supported"
    try:
        with pytest.raises(adapters.AdapterError) as refusal:
            llm.adapted(ctx, adapter)
    finally:
        server.refuse_adapters = ""
    assert str(refusal.value) == (f"Ollama 0.12.6 {adapters.REFUSED} (FROM {SMALL} + ADAPTER): "
                                  "adapters are not supported")
    assert adapt.refused(ctx, store) == ""
    genome = archive.add(store, Genome("prompt", adapter, {}, [], "lora:train", 0, 1))
    archive.mark(store, genome.id, "invalid", str(refusal.value))
    assert adapt.skip(ctx, store, "auto") == f"{refusal.value} (run 1; another Ollama version, or evolution.lora: off)"

    later = archive.add(store, Genome("prompt", adapter, {}, [], "lora:train", 0, 2))  # a newer run's adapter
    archive.scored(store, later, {"probe:0": 0.5}, [])
    assert adapt.refused(ctx, store) == ""
