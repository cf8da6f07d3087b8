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
Does not own: the operators, the fitness, the archive; the CLI view (cli/evolve.py).
"""

from __future__ import annotations

import json
import random
import time
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from graph.context import Context
from graph.evolution import archive, fitness, operators
from graph.evolution.adapt import adapt, prune
from graph.evolution.archive import Genome
from graph.learning import selfprompt
from graph.models import adapters, serving
from graph.store import store_for


class EvolutionState(TypedDict, total=False):
    generations: int  # breeding rounds after the seed generation (default: evolution.generations)
    population: int
    budget_minutes: float
    trigger: str  # cli, cron, auto, tool, studio
    lora: str  # auto, on, off (default: evolution.lora)
    rng_seed: int  # varies the run's random choices (default 0)
    run: int
    generation: int
    members: list[int]
    incumbent: int
    deadline: float
    history: list[dict]  # per generation: best, mean, front size, scored
    outcome: str


class OutOfTime(Exception):
    pass


def _settings(state: EvolutionState, ctx: Context) -> tuple[int, int, float]:
    e = ctx.settings.evolution
    return (state.get("generations") or e.generations, state.get("population") or e.population,
            state.get("budget_minutes") or e.budget_minutes)


def _rng(state: EvolutionState) -> random.Random:
    return random.Random(f"{state.get('rng_seed', 0)}:{state['run']}:{state.get('generation', 0)}")


def seed(state: EvolutionState, runtime: Runtime[Context]) -> dict:
    ctx = runtime.context or Context()
    store = store_for(ctx.home)
    generations, population, minutes = _settings(state, ctx)
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
    rng, wants = _rng(state), fitness.preferences(ctx)
    seen = {_key(archive.get(store, i)) for i in members}
    for _ in range(3 * population):
        if len(members) >= population:
            break
        child = _mutant(ctx, store, incumbent, rng, wants, run, 0)
        if _fresh(store, child, seen):
            members.append(child.id)
    _say(runtime, store, run, stage="seeded", generation=0, members=len(members))
    return {"run": run, "generation": 0, "members": members, "incumbent": incumbent.id, "history": [],
            "deadline": time.time() + minutes * 60}


def score(state: EvolutionState, runtime: Runtime[Context]) -> dict:
    ctx = runtime.context or Context()
    store = store_for(ctx.home)
    chosen, wants = fitness.cases(ctx, store), fitness.preferences(ctx)
    todo = [g for g in (archive.get(store, i) for i in state["members"]) if g.status == "new"]
    for n, genome in enumerate(todo, 1):
        if time.time() > state["deadline"]:
            return {"outcome": "budget"}
        done = []

        def each(case, judged, genome=genome, n=n):
            done.append(case.id)
            _say(runtime, store, state["run"], stage="scoring", generation=state["generation"], genome=genome.id,
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


def select(state: EvolutionState, runtime: Runtime[Context]) -> dict:
    ctx = runtime.context or Context()
    store = store_for(ctx.home)
    _, population, _ = _settings(state, ctx)
    scored = [g for g in (archive.get(store, i) for i in state["members"]) if g.status == "scored"]
    survivors = fitness.select(scored, min(max(1, population // 2), population - 1))  # room for a child
    best = survivors[0] if survivors else None
    row = {"generation": state["generation"], "best": best.fitness if best else None, "best_id": best.id if best else None,
           "mean": round(sum(g.fitness for g in scored) / len(scored), 4) if scored else None,
           "front": len(fitness.front(scored)), "scored": len(scored)}
    _say(runtime, store, state["run"], stage="selected", **row)
    return {"members": [g.id for g in survivors], "history": [*state.get("history", []), row]}


def breed(state: EvolutionState, runtime: Runtime[Context]) -> dict:
    ctx = runtime.context or Context()
    store = store_for(ctx.home)
    _, population, _ = _settings(state, ctx)
    generation = state["generation"] + 1
    rng, wants = _rng({**state, "generation": generation}), fitness.preferences(ctx)
    parents = [archive.get(store, i) for i in state["members"]]
    weights = fitness.wins(parents)
    seen = {_key(g) for g in parents}
    members = list(state["members"])
    tries = 0
    while len(members) < population and tries < 3 * population:
        tries += 1
        _say(runtime, store, state["run"], stage="breeding", generation=generation, members=len(members))
        first = rng.choices(parents, weights=[weights[g.id] + 1 for g in parents])[0]
        others = [g for g in parents if g.id != first.id]
        if others and rng.random() < 0.5:
            second = rng.choices(others, weights=[weights[g.id] + 1 for g in others])[0]
            child, why = operators.crossover(ctx, first, second, rng)
            child = _keep(store, child, why, state["run"], generation)
        else:
            child = _mutant(ctx, store, first, rng, wants, state["run"], generation)
        if _fresh(store, child, seen):
            members.append(child.id)
    return {"generation": generation, "members": members}


def promote(state: EvolutionState, runtime: Runtime[Context]) -> dict:
    ctx = runtime.context or Context()
    store = store_for(ctx.home)
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
        _say(runtime, store, run, stage="confirming", genome=best.id)
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
    _say(runtime, store, run, stage="done", decision=summary["decision"])
    return {"outcome": summary["decision"]}


def promote_genome(ctx: Context, genome: Genome, why: str) -> str:
    """Make `genome` serve the agent: a new prompt version authored by evolution, on probation
    (rolled back by live rewards like any rewrite; the same text when only its sampling or
    adapter differ), with the genome's sampling and LoRA adapter attached while it serves.
    Returns what was done."""
    store = store_for(ctx.home)
    version = selfprompt.propose(ctx, genome.prompt, "evolution", why, same_text=True)
    serving.attach(store, version.id, {**genome.sampling, **({"lora": genome.lora} if genome.lora else {})})
    archive.mark(store, genome.id, "promoted", f"prompt version {version.id}: {why}")
    return f"promoted genome #{genome.id} as prompt version {version.id} (on probation): {why}"


def _mutant(ctx, store, parent: Genome, rng, wants, run, generation) -> Genome:
    """A mutant of `parent`: half the time reflective (on its worst cases) when it has been scored."""
    kinds = [k for k in operators.MUTATIONS if k != "reflect"]
    kind = "reflect" if parent.feedback and rng.random() < 0.5 else rng.choice(kinds)
    child, why = operators.mutate(ctx, parent, kind, wants, rng)
    return _keep(store, child, why, run, generation)


def _keep(store, child: Genome, why: str, run: int, generation: int) -> Genome:
    """Archive a child; when the model's own child was unusable, archive that failure too."""
    child.run, child.generation = run, generation
    if why:
        archive.add(store, Genome(child.prompt, child.lora, child.sampling, child.parents,
                                  child.operator.split(":")[0] + ":llm", generation, run, status="invalid", note=why))
    return archive.add(store, child)


def _key(genome: Genome) -> tuple:
    return genome.prompt, genome.lora, json.dumps(genome.sampling, sort_keys=True)


def _fresh(store, child: Genome, seen: set) -> bool:
    """Is the child new to this generation? A copy is archived as invalid, and not scored twice."""
    if _key(child) in seen:
        archive.mark(store, child.id, "invalid", "the same prompt, adapter and sampling as a member")
        return False
    seen.add(_key(child))
    return True


def _say(runtime: Runtime[Context], store, run: int, **state) -> None:
    archive.progress(store, run, **state)
    runtime.stream_writer({"evolution": {"run": run, **state}})


def more(state: EvolutionState, runtime: Runtime[Context]) -> str:
    ctx = runtime.context or Context()
    generations, _, _ = _settings(state, ctx)
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
    store = store_for(ctx.home)
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
