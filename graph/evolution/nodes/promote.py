"""`promote`: the end of a run: the best genome replaces the one in use only if its fitness beats
the incumbent's by `evolution.promote_margin`, confirmed by a second round on the same cases; it
then serves on probation (selfprompt: rolled back automatically if live rewards fall). Also
`promote_genome`, which a promotion by hand uses too (runs.py).

Does not own: the probation (learning/selfprompt.py) or the adapters of earlier runs (adapt.py's prune).
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from graph.context import Context, of
from graph.evolution import archive, fitness
from graph.evolution.adapt import prune
from graph.evolution.archive import Genome
from graph.evolution.state import EvolutionState, say
from graph.learning import selfprompt
from graph.models import serving


def promote(state: EvolutionState, runtime: Runtime[Context]) -> dict:
    ctx = of(runtime)
    store = ctx.store
    run, margin = state["run"], ctx.settings.evolution.promote_margin
    incumbent = archive.get(store, state["incumbent"])
    scored = [g for g in archive.of_run(store, run) if g.status == "scored"]
    best = max(scored, key=lambda g: g.fitness, default=None)
    summary = {"generations": state.get("history", []), "scored": len(scored),
               "incumbent": {"id": incumbent.id, "fitness": incumbent.fitness},
               "best": {"id": best.id, "fitness": best.fitness, "operator": best.operator} if best else None,
               "stopped": state.get("outcome", "")}
    if best is None or incumbent.fitness is None:
        summary["decision"] = "nothing scored: nothing to promote"
    elif best.id == incumbent.id or best.fitness < incumbent.fitness + margin:
        summary["decision"] = (f"kept the prompt in use: the best genome #{best.id} scored {best.fitness:.3f}, the"
                               f" one in use {incumbent.fitness:.3f} (a margin of {margin} is needed)")
    else:  # a lucky score is not enough: both answer every case again, and the means of both rounds decide
        say(runtime, store, run, stage="confirming", genome=best.id)
        chosen, wants = fitness.cases(ctx, store), fitness.preferences(ctx)
        again = {g.id: fitness.evaluate(ctx, g, chosen, wants) for g in (best, incumbent)}
        mean = {g.id: (g.fitness + sum(j.score for j in again[g.id].values()) / len(chosen)) / 2
                for g in (best, incumbent)}
        summary["confirmed"] = {"best": round(mean[best.id], 4), "incumbent": round(mean[incumbent.id], 4)}
        numbers = (f"fitness {mean[best.id]:.3f} vs {mean[incumbent.id]:.3f} for the one in use over two rounds"
                   f" of {len(chosen)} cases")
        if mean[best.id] < mean[incumbent.id] + margin:
            summary["decision"] = f"kept the prompt in use: genome #{best.id} did not hold up ({numbers})"
        else:
            summary["decision"] = promote_genome(ctx, best, f"evolution run {run}: {numbers}")
    prune(ctx, run)
    archive.finish(store, run, "done", summary)
    say(runtime, store, run, stage="done", decision=summary["decision"])
    return {"outcome": summary["decision"]}


def promote_genome(ctx: Context, genome: Genome, why: str) -> str:
    """Make `genome` serve the agent: a new prompt version authored by evolution, on probation
    (rolled back by live rewards like any rewrite; the same text when only its sampling or
    adapter differ), with the genome's sampling and LoRA adapter attached while it serves.
    Returns what was done."""
    store = ctx.store
    version = selfprompt.propose(ctx, genome.prompt, "evolution", why, same_text=True)
    serving.attach(store, version.id, {**genome.sampling, **({"lora": genome.lora} if genome.lora else {})})
    archive.mark(store, genome.id, "promoted", f"prompt version {version.id}: {why}")
    return f"promoted genome #{genome.id} as prompt version {version.id} (on probation): {why}"
