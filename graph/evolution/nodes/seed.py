"""`seed`: the first generation: the genome in use now (the prompt version serving, its sampling
and adapter), earlier kept prompt versions, then mutants of the one in use, up to the population.

Does not own: the mutants (offspring.py, operators.py) or the archive (archive.py).
"""

from __future__ import annotations

import time

from langgraph.runtime import Runtime

from graph.context import Context, of
from graph.evolution import archive, fitness
from graph.evolution.archive import Genome
from graph.evolution.offspring import fresh, genome_key, mutant
from graph.evolution.state import EvolutionState, random_for, run_settings, say
from graph.learning import selfprompt
from graph.models import serving


def seed(state: EvolutionState, runtime: Runtime[Context]) -> dict:
    ctx = of(runtime)
    store = ctx.store
    generations, population, minutes = run_settings(state, ctx)
    run = archive.start(store, state.get("trigger", "studio"),
                        {"generations": generations, "population": population, "budget_minutes": minutes})
    now = selfprompt.current(ctx)
    attached = serving.evolved(store)
    incumbent = archive.add(store, Genome(now.text, lora=attached.get("lora"), operator="incumbent", run=run,
                                          sampling={"temperature": attached.get("temperature",
                                                                                ctx.settings.llm.temperature)},
                                          note=f"prompt version {now.id}"))
    members, texts = [incumbent.id], {now.text}
    for version in reversed(selfprompt.history(store)):
        if len(members) >= population // 2:
            break
        if version.text not in texts and version.status in ("active", "retired") and version.author != "config":
            texts.add(version.text)
            members.append(archive.add(store, Genome(version.text, sampling=incumbent.sampling, operator="seed:version",
                                                     parents=[], run=run, note=f"prompt version {version.id}")).id)
    state = {**state, "run": run, "generation": 0}
    rng, wants = random_for(state), fitness.preferences(ctx)
    seen = {genome_key(archive.get(store, i)) for i in members}
    for _ in range(3 * population):
        if len(members) >= population:
            break
        child = mutant(ctx, store, incumbent, rng, wants, run, 0)
        if fresh(store, child, seen):
            members.append(child.id)
    say(runtime, store, run, stage="seeded", generation=0, members=len(members))
    return {"run": run, "generation": 0, "members": members, "incumbent": incumbent.id, "history": [],
            "deadline": time.time() + minutes * 60}
