"""`select`: the survivors of a generation: the Pareto front over cases, then the best means
(fitness.select), with room left for a child; each generation's best, mean and front size
go into the run's history.

Does not own: the selection itself (fitness.py).
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from graph.context import Context, of
from graph.evolution import archive, fitness
from graph.evolution.state import EvolutionState, run_settings, say


def select(state: EvolutionState, runtime: Runtime[Context]) -> dict:
    ctx = of(runtime)
    store = ctx.store
    _, population, _ = run_settings(state, ctx)
    scored = [g for g in (archive.get(store, i) for i in state["members"]) if g.status == "scored"]
    survivors = fitness.select(scored, min(max(1, population // 2), population - 1))  # room for a child
    best = survivors[0] if survivors else None
    row = {"generation": state["generation"], "best": best.fitness if best else None, "best_id": best.id if best else None,
           "mean": round(sum(g.fitness for g in scored) / len(scored), 4) if scored else None,
           "front": len(fitness.front(scored)), "scored": len(scored)}
    say(runtime, store, state["run"], stage="selected", **row)
    return {"members": [g.id for g in survivors], "history": [*state.get("history", []), row]}
