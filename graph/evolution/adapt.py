"""`adapt`: the LoRA stage of an evolution run (the model-merge part, as in Sakana's
evolutionary model merge and LoraHub).

Two LoRA adapters of the embedded model are trained on the two halves of the desirable
training examples (undesirable ones pushed down), then crossed: CMA-ES searches the weights
and density of a TIES merge of the two that maximizes the likelihood of the held-out
examples; a mutant merge perturbs the weights and density found. Each adapter (the two
parents, their merge and the mutant), written as a GGUF LoRA for llama.cpp, becomes a genome with the incumbent's prompt and sampling, scored like every other
genome (its answers come from the embedded model with the adapter) and promotable like them.
Skipped, with the reason in the run's progress, when `evolution.lora` is off, when the model
serving is not the embedded one (the adapters are for it), when there are too few examples,
or (in `auto`) when the LoRA packages are missing; `lora: on` makes those an error.
Does not own: training, merging and the GGUF format (lora.py); scoring (fitness.py).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

from langgraph.runtime import Runtime

from graph import llm, tuning
from graph.context import Context
from graph.evolution import archive
from graph.evolution.archive import Genome
from graph.store import store_for

MIN_HELD_OUT = 2
POPSIZE = 4
MUTATION_SIGMA = 0.3  # the mutant merge: weights and density moved this much from the CMA-ES best


class AdaptError(Exception):
    """`evolution.lora: on` and adapters cannot be made; the message says why."""


def folder(ctx: Context, run: int) -> Path:
    return Path(ctx.home) / "adapters" / f"run-{run}"


def skip(ctx: Context, store, mode: str) -> str:
    """Why no adapters are made in this run ('' when they are)."""
    e = ctx.settings.evolution
    if mode == "off":
        return "evolution.lora is off"
    backend = llm.active(ctx)
    if backend.name != "embedded":
        return f"the adapters are for the embedded model, and {backend.name} ({backend.model}) serves"
    good = len(tuning.listing(store, label="desirable", split="train"))
    if good < e.lora_min_examples:
        return f"{good} desirable training examples; {e.lora_min_examples} needed (evolution.lora_min_examples)"
    if len(held_out(store)) < MIN_HELD_OUT:
        return f"fewer than {MIN_HELD_OUT} held-out desirable examples to judge the merge on"
    return ""


def held_out(store) -> list:
    from graph.evolution import lora

    bad = {e.question: e.answer for e in tuning.listing(store, label="undesirable", split="eval")}
    return [lora.Case(e.messages[:-1], e.answer, bad.get(e.question))
            for e in tuning.listing(store, label="desirable", split="eval") if e.question]


def adapt(state: dict, runtime: Runtime[Context]) -> dict:
    ctx = runtime.context or Context()
    store = store_for(ctx.home)
    run = state["run"]

    def say(**progress) -> None:
        archive.progress(store, run, generation=0, **progress)
        runtime.stream_writer({"evolution": {"run": run, "generation": 0, **progress}})

    from graph.evolution.lora import LoraUnavailable  # (cheap: lora.py imports torch & co. lazily)

    mode = state.get("lora") or ctx.settings.evolution.lora
    why = skip(ctx, store, mode)
    if not why:
        try:
            return {"members": [*state["members"], *breed(ctx, store, state, say)]}
        except LoraUnavailable as exc:  # a missing package, an unusable base model
            why = str(exc)
    if mode == "on":
        raise AdaptError(f"no LoRA adapters: {why}")
    say(stage="adapters skipped", why=why)
    return {}


def breed(ctx: Context, store, state: dict, say) -> list[int]:
    """Train, cross (CMA-ES over a TIES merge) and archive the adapters; returns their genome ids."""
    from graph.embedded import model_file
    from graph.evolution import lora

    e, run = ctx.settings.evolution, state["run"]
    base_gguf = model_file(ctx.settings.llm.embedded.model_path)
    say(stage="loading the base model for LoRA")
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
    from graph import selfprompt

    serving = selfprompt.evolved(store_for(ctx.home)).get("lora", "")
    root = Path(ctx.home) / "adapters"
    for old in root.iterdir() if root.is_dir() else []:
        for sub in old.iterdir() if old != folder(ctx, run) and old.is_dir() else []:
            if not (serving and Path(serving).is_relative_to(sub)):
                shutil.rmtree(sub, ignore_errors=True)
