"""The evolution subgraph: seed → score → select → (breed → score → select)… → promote.

Its own LangGraph StateGraph (visible in LangGraph Studio as `evolution`), run by `agent.py
evolve`, cron, the agent's own tool, or in the background every `evolution.every_turns`
turns. One run per data folder at a time (archive.start). Every genome is archived as it is
made and scored, so a run cut short (budget, Ctrl-C, kill) keeps what it found.

- seed: the genome in use now (the prompt version serving, its sampling and adapter) plus
  variants of it: earlier kept prompt versions, then mutants, up to the population size.
- adapt: LoRA adapters trained on the tuning data and crossed by a CMA-ES-searched TIES merge
  (adapt.py), each a genome.
- score: each unscored member answers every case and is judged (fitness.py); the budget
  is checked after every case.
- select: the Pareto front over cases, then the best means (fitness.select).
- breed: parents drawn by how many cases they are best on; crossover or mutation (operators.py).
- promote: the best genome replaces the one in use only if its fitness beats the incumbent's
  by `evolution.promote_margin` on the same cases; it then serves on probation
  (selfprompt: rolled back automatically if live rewards fall).
Owns: the wiring (`build`, `builder`: what Studio loads), when to breed again (`more`) and
running a whole run (`evolve`). Does not own: the nodes (nodes/, one per file), the state
(state.py), the operators, the fitness, the archive; the CLI view (cli/evolve.py).
"""

from __future__ import annotations

import time

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from graph.context import Context, of
from graph.evolution import archive
from graph.evolution.nodes.adapt import adapt
from graph.evolution.nodes.breed import breed
from graph.evolution.nodes.promote import promote
from graph.evolution.nodes.score import score
from graph.evolution.nodes.seed import seed
from graph.evolution.nodes.select import select
from graph.evolution.state import EvolutionState, run_settings


def more(state: EvolutionState, runtime: Runtime[Context]) -> str:
    ctx = of(runtime)
    generations, _, _ = run_settings(state, ctx)
    if state.get("outcome") == "budget" or time.time() > state["deadline"]:
        return "promote"
    return "breed" if state["generation"] < generations else "promote"


def build() -> StateGraph:
    g = StateGraph(EvolutionState, context_schema=Context)
    g.add_node("seed", seed)
    g.add_node("adapt", adapt)
    g.add_node("score", score)
    g.add_node("select", select)
    g.add_node("breed", breed)
    g.add_node("promote", promote)
    g.add_edge(START, "seed")
    g.add_edge("seed", "adapt")
    g.add_edge("adapt", "score")
    g.add_edge("score", "select")
    g.add_conditional_edges("select", more, ["breed", "promote"])
    g.add_edge("breed", "score")
    g.add_edge("promote", END)
    return g


builder = build()  # langgraph.json points Studio here (uncompiled, like the agent's graph)


def evolve(ctx: Context, trigger: str, on_event=lambda event: None, **settings) -> dict:
    """Run the subgraph to the end; returns the run's archive row. A failure marks the run failed
    (what was scored stays archived) and raises; Ctrl-C marks it stopped."""
    graph = builder.compile()
    store = ctx.store
    state: dict = {}
    try:
        for mode, chunk in graph.stream({"trigger": trigger, **{k: v for k, v in settings.items() if v}},
                                        context=ctx, stream_mode=["custom", "values"]):
            if mode == "custom" and "evolution" in chunk:
                on_event(chunk["evolution"])
            elif mode == "values":
                state = chunk
    except BaseException as exc:
        archive.abandon(store, "stopped" if isinstance(exc, KeyboardInterrupt) else "failed",
                        {"error": str(exc) or type(exc).__name__, "generations": state.get("history", [])})
        raise
    return archive.run(store, state["run"])
