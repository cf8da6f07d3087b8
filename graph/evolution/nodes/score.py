"""`score`: each unscored member answers every case and is judged (fitness.py); the budget is
checked after every case, and a genome cut short stays unscored.

Does not own: the cases, answering and judging (fitness.py) or the archive (archive.py).
"""

from __future__ import annotations

import time

from langgraph.runtime import Runtime

from graph.context import Context, of
from graph.evolution import archive, fitness
from graph.evolution.state import EvolutionState, say
from graph.models import adapters


class OutOfTime(Exception):
    pass


def score(state: EvolutionState, runtime: Runtime[Context]) -> dict:
    ctx = of(runtime)
    store = ctx.store
    chosen, wants = fitness.cases(ctx, store), fitness.preferences(ctx)
    todo = [g for g in (archive.get(store, i) for i in state["members"]) if g.status == "new"]
    for n, genome in enumerate(todo, 1):
        if time.time() > state["deadline"]:
            return {"outcome": "budget"}
        done = []

        def each(case, judged, genome=genome, n=n):
            done.append(case.id)
            say(runtime, store, state["run"], stage="scoring", generation=state["generation"], genome=genome.id,
                 member=n, members=len(todo), case=len(done), cases=len(chosen))
            if time.time() > state["deadline"] and len(done) < len(chosen):
                raise OutOfTime

        try:
            judged = fitness.evaluate(ctx, genome, chosen, wants, each)
        except OutOfTime:  # a genome scored on some cases only stays unscored (`new`)
            return {"outcome": "budget"}
        except adapters.AdapterError as exc:  # its adapter cannot be served (Ollama refused to create it)
            archive.mark(store, genome.id, "invalid", str(exc))
            continue
        worst = sorted(judged.items(), key=lambda kv: kv[1].score)[:3]
        feedback = [{"question": next(c.question for c in chosen if c.id == cid)[:300], "answer": j.answer[:300],
                     "score": round(j.score * 10), "why": j.why} for cid, j in worst if j.score < 1]
        archive.scored(store, genome, {cid: j.score for cid, j in judged.items()}, feedback)
    return {}
