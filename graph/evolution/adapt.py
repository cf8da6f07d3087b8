"""The LoRA stage of an evolution run (the model-merge part, as in Sakana's evolutionary model
merge and LoraHub); its node is nodes/adapt.py.

Two LoRA adapters of the model serving (the embedded GGUF, or the GGUF blob behind the Ollama
model) are trained on the two halves of the desirable training examples (undesirable ones
pushed down), then crossed: CMA-ES searches the weights and density of a TIES merge of the two
that maximizes the likelihood of the held-out examples; a mutant merge perturbs the weights and
density found. Each adapter (the two parents, their merge and the mutant), written as a GGUF
LoRA, becomes a genome with the incumbent's prompt and sampling, scored like every other genome
(its answers come from the model with the adapter: llama.cpp's `lora_path`, or an Ollama model
made FROM the model + ADAPTER, adapters.py) and promotable like them.
Training runs on the CPU, or as 4-bit QLoRA on a CUDA GPU after Ollama has unloaded the chat
model (vram.gpu_job); a model too large for the CPU (over CPU_MAX_PARAMETERS) or for the GPU's
memory is not trained.
Skipped, with the reason in the run's progress, when `evolution.lora` is off, when the model's
weights cannot be read or trained here, when there are too few examples, or (in `auto`) when
the LoRA packages are missing; `lora: on` makes those an error.
Does not own: training, merging and the GGUF format (lora.py); serving adapters (adapters.py);
scoring (fitness.py).
"""

from __future__ import annotations

import gc
import random
import shutil
from pathlib import Path

from graph.context import Context
from graph.evolution import archive
from graph.evolution.archive import Genome
from graph.learning import tuning
from graph.models import adapters, llm, vram

MIN_HELD_OUT = 2
POPSIZE = 4
MUTATION_SIGMA = 0.3  # the mutant merge: weights and density moved this much from the CMA-ES best
CPU_MAX_PARAMETERS = 1_000_000_000  # ~1 s/step at 135M (bench_lora.py): a 1B model takes ~10 min per run on CPU


class AdaptError(Exception):
    """`evolution.lora: on` and adapters cannot be made; the message says why."""


def folder(ctx: Context, run: int) -> Path:
    return Path(ctx.home) / "adapters" / f"run-{run}"


def skip(ctx: Context, store, mode: str) -> str:
    """Why no adapters are made in this run ('' when they are)."""
    e = ctx.settings.evolution
    if mode == "off":
        return "evolution.lora is off"
    problem = trainable(ctx) or refused(ctx, store)
    if problem:
        return problem
    good = len(tuning.listing(store, label="desirable", split="train"))
    if good < e.lora_min_examples:
        return f"{good} desirable training examples; {e.lora_min_examples} needed (evolution.lora_min_examples)"
    if len(held_out(store)) < MIN_HELD_OUT:
        return f"fewer than {MIN_HELD_OUT} held-out desirable examples to judge the merge on"
    return ""


def trainable(ctx: Context) -> str:
    """Why no adapter can be trained for the model serving here ('' when one can)."""
    from graph.evolution import lora

    backend = llm.active(ctx)
    try:
        count = adapters.parameters(adapters.weights(ctx.settings, backend.name))
        device = lora.training_device()
    except (adapters.AdapterError, lora.LoraUnavailable) as exc:  # unreadable weights, no torch
        return str(exc)
    size = f"{backend.model} ({count / 1e9:.2f}B parameters)"
    if device == "cpu":
        if count > CPU_MAX_PARAMETERS:
            return (f"training a LoRA for {size} on the CPU would take hours; it needs a CUDA GPU (4-bit QLoRA) "
                    f"or a model of at most {CPU_MAX_PARAMETERS / 1e9:.0f}B parameters")
        return ""
    need, gpu = lora.qlora_vram_bytes(count), vram.gpu_memory()
    if gpu and need > gpu[1]:
        return f"4-bit QLoRA for {size} needs about {vram.gib(need)} of GPU memory; the GPU has {vram.gib(gpu[1])}"
    return ""


def refused(ctx: Context, store) -> str:
    """Ollama's refusal of the last adapters, when the same Ollama version serves: no training for
    models it will not make ('' otherwise)."""
    last = archive.last_adapter(store)
    if not (last and last.status == "invalid" and adapters.REFUSED in last.note and llm.active(ctx).name == "ollama"):
        return ""
    if f"Ollama {adapters.ollama_version(ctx.settings)} " not in last.note:
        return ""  # another Ollama now: try again
    return f"{last.note} (run {last.run}; another Ollama version, or evolution.lora: off)"


def held_out(store) -> list:
    from graph.evolution import lora

    bad = {e.question: e.answer for e in tuning.listing(store, label="undesirable", split="eval")}
    return [lora.Case(e.messages[:-1], e.answer, bad.get(e.question))
            for e in tuning.listing(store, label="desirable", split="eval") if e.question]


def breed(ctx: Context, store, state: dict, say) -> list[int]:
    """Train, cross (CMA-ES over a TIES merge) and archive the adapters; returns their genome ids."""
    from graph.evolution import lora

    backend = llm.active(ctx)
    if lora.training_device() == "cpu":
        return _breed(ctx, store, state, say, backend)
    import torch

    with vram.gpu_job(ctx.settings, lambda text: say(stage="freeing the GPU", why=text)):  # Ollama's model out
        try:
            return _breed(ctx, store, state, say, backend)
        except torch.OutOfMemoryError:
            raise lora.LoraUnavailable(f"out of GPU memory training adapters for {backend.model}") from None
        finally:  # the base model's memory back to the GPU before Ollama loads the chat model again
            gc.collect()
            torch.cuda.empty_cache()


def _breed(ctx: Context, store, state: dict, say, backend: llm.Backend) -> list[int]:
    from graph.evolution import lora

    e, run = ctx.settings.evolution, state["run"]
    base_gguf = adapters.weights(ctx.settings, backend.name)
    say(stage=f"loading {backend.model} for LoRA ({lora.training_device()})")
    base, tokenizer = lora.base_model(Path(ctx.home) / "cache" / "lora-base", base_gguf)
    good = [x.messages for x in tuning.listing(store, label="desirable", split="train")]
    bad = [x.messages for x in tuning.listing(store, label="undesirable", split="train")]
    where = folder(ctx, run)
    shutil.rmtree(where, ignore_errors=True)
    parents = []
    for i, half in enumerate((good[0::2], good[1::2])):
        name = "ab"[i]
        say(stage=f"training adapter {name}", step=0, steps=e.lora_steps)
        parents.append(lora.train(base, tokenizer, half, where / name, e.lora_steps, undesirable=bad, seed=run + i,
                                  progress=lambda step, loss, name=name: say(stage=f"training adapter {name}",
                                                                             step=step, steps=e.lora_steps)))
    cases = held_out(store)
    say(stage="searching the merge (CMA-ES)", iteration=0, iterations=e.lora_iterations)
    found = lora.search(base, tokenizer, parents, cases, combination="ties", iterations=e.lora_iterations,
                        popsize=POPSIZE, seed=run,
                        progress=lambda i, best: say(stage="searching the merge (CMA-ES)", iteration=i,
                                                     iterations=e.lora_iterations, best=round(best, 4)))
    weights, density = lora.mutate(found.weights, found.density, MUTATION_SIGMA, random.Random(run))
    children = {"merge": (found.weights, found.density, "lora:merge:ties", "CMA-ES best"),
                "mutant": (weights, density, "lora:mutate", "the CMA-ES best, perturbed")}
    for name, (w, d, _, _) in children.items():
        merged = lora.merge(base, parents, w, d, "ties")
        lora.save(merged, where / name)
        merged.unload()
    incumbent = archive.get(store, state["incumbent"])
    ids = []
    for i, path in enumerate(parents):
        note = f"trained on half {'ab'[i]} of {len(good)} desirable examples, {e.lora_steps} steps"
        ids.append(_genome(store, lora, path, base_gguf, incumbent, [incumbent.id], "lora:train", run, note))
    for name, (w, d, operator, what) in children.items():
        note = (f"TIES merge, weights {[round(x, 3) for x in w]}, density {d:.2f} ({what}; CMA-ES: held-out"
                f" likelihood {found.score:.3f} after {len(found.history)} iterations)")
        ids.append(_genome(store, lora, where / name, base_gguf, incumbent, ids[:2], operator, run, note))
    return ids


def _genome(store, lora, path: Path, base_gguf: Path, incumbent: Genome, parents: list[int], operator: str,
            run: int, note: str) -> int:
    """Write the adapter as GGUF and archive it as a genome with the incumbent's prompt and sampling."""
    gguf = lora.to_gguf(path, path / "adapter.gguf", base_gguf)
    return archive.add(store, Genome(incumbent.prompt, str(gguf), dict(incumbent.sampling), parents, operator, 0,
                                     run, note=note)).id


def prune(ctx: Context, run: int) -> None:
    """Delete the adapters of earlier runs, except the one serving now (this run's stay, so any of
    its genomes can still be promoted by hand)."""
    from graph.models import serving

    in_use = serving.evolved(ctx.store).get("lora", "")
    root = Path(ctx.home) / "adapters"
    doomed = [sub for old in (root.iterdir() if root.is_dir() else []) if old != folder(ctx, run) and old.is_dir()
              for sub in old.iterdir() if not (in_use and Path(in_use).is_relative_to(sub))]
    adapters.forget(ctx.settings, [f for sub in doomed for f in sub.glob("*.gguf")])  # their Ollama models
    for sub in doomed:
        shutil.rmtree(sub, ignore_errors=True)
