"""`breed`: the next generation: parents drawn by how many cases they are best on, then
crossover or mutation (operators.py) until the population is full.

Does not own: the operators (operators.py) or archiving the children (offspring.py).
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from graph.context import Context, of
from graph.evolution import archive, fitness, operators
from graph.evolution.offspring import fresh, genome_key, keep, mutant
from graph.evolution.state import EvolutionState, random_for, run_settings, say


def breed(state: EvolutionState, runtime: Runtime[Context]) -> dict:
    ctx = of(runtime)
    store = ctx.store
    _, population, _ = run_settings(state, ctx)
    generation = state["generation"] + 1
    rng, wants = random_for({**state, "generation": generation}), fitness.preferences(ctx)
    parents = [archive.get(store, i) for i in state["members"]]
    weights = fitness.wins(parents)
    seen = {genome_key(g) for g in parents}
    members = list(state["members"])
    tries = 0
    while len(members) < population and tries < 3 * population:
        tries += 1
        say(runtime, store, state["run"], stage="breeding", generation=generation, members=len(members))
        first = rng.choices(parents, weights=[weights[g.id] + 1 for g in parents])[0]
        others = [g for g in parents if g.id != first.id]
        if others and rng.random() < 0.5:
            second = rng.choices(others, weights=[weights[g.id] + 1 for g in others])[0]
            child, why = operators.crossover(ctx, first, second, rng)
            child = keep(store, child, why, state["run"], generation)
        else:
            child = mutant(ctx, store, first, rng, wants, state["run"], generation)
        if fresh(store, child, seen):
            members.append(child.id)
    return {"generation": generation, "members": members}
