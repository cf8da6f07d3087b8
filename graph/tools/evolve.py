"""The agent's own evolution as tools: start a run, follow it, read the lineage, promote or
roll back a variant ("evolve yourself tonight", 「学習して」, 「進化して」).

A run goes to a background process (`agent.py evolve --background`): the chat never waits,
and `status` / evolution_status show its progress. Starting, promoting and rolling back are
self-modification (acts="self": after web or MCP content they need the user's yes) and are
refused while learning is frozen or off. Expected failures are ToolExceptions.
Does not own: the actions (actions/evolution.py), the subgraph (evolution/graph.py) or the archive.
"""

from __future__ import annotations

import re

from langchain_core.tools import ToolException, tool
from langgraph.prebuilt import ToolRuntime

from graph.actions import Problem, evolution
from graph.context import Context
from graph.evolution import runs
from graph.tools.learn import context_of

WANTED = re.compile(r"\b(evolv\w*|evolution|fine-?tun\w*|train\w*|lora|adapters?|variants?|lineage|genomes?|"
                    r"promot\w*|roll ?back|generations?)\b|進化|学習して|微調整|ファインチューニング|系譜", re.IGNORECASE)


def wanted(message: str) -> bool:
    """Whether the message is about the agent's evolution: the embedded model is offered these
    tools only then (tools/__init__.py's asked_for)."""
    return bool(WANTED.search(message))


@tool
def start_evolution(runtime: ToolRuntime[Context], generations: int | None = None, population: int | None = None,
                    budget_minutes: float | None = None) -> str:
    """Evolve yourself: breed variants of your prompt and sampling (crossover, mutation) in the
    background, scored on held-out examples, and promote the best on probation. Use it when the
    user asks you to evolve, improve or train yourself (「学習して」「進化して」). Leave the numbers
    out to use the configured ones."""
    ctx = context_of(runtime, "starting an evolution run")
    try:
        pid = evolution.start(ctx, "tool", {"generations": generations, "population": population,
                                            "budget_minutes": budget_minutes})
    except Problem as exc:
        raise ToolException(str(exc)) from None
    minutes = budget_minutes or ctx.settings.evolution.budget_minutes
    return (f"Evolution started in the background (process {pid}, at most about {minutes:g} minutes of breeding). "
            "Tell the user they can keep chatting; `agent.py status` shows its progress.")


@tool
def train_lora(runtime: ToolRuntime[Context]) -> str:
    """Fine-tune yourself: train LoRA adapters on your tuning data in the background, cross them
    by a CMA-ES-searched merge, promote the best variant on probation. Use it when the user asks
    you to fine-tune or train on the examples."""
    ctx = context_of(runtime, "training LoRA adapters")
    try:
        pid = evolution.start(ctx, "tool", lora=True)
    except Problem as exc:
        raise ToolException(str(exc)) from None
    return f"LoRA training started in the background (process {pid}); `agent.py status` shows its progress."


@tool
def evolution_status(runtime: ToolRuntime[Context]) -> str:
    """Evolution status: progress, best fitness per generation, what was promoted."""
    store = context_of(runtime).store
    rows = evolution.runs(store, 5)
    if not rows:
        return "No evolution run yet."
    lines = [runs.summary_line(evolution.status(store))]
    for r in rows:
        best = [g["best"] for g in r["summary"].get("generations", []) if g["best"] is not None]
        lines.append(f"run {r['id']} ({r['trigger']}): {r['status']}; best fitness per generation "
                     f"{', '.join(f'{b:.2f}' for b in best) or '-'}")
    return "\n".join(lines)


@tool
def show_lineage(runtime: ToolRuntime[Context], run: int | None = None) -> str:
    """Evolution lineage: the family tree of evolved variants (default: the latest evolution),
    with operator, parents, fitness and status of each genome."""
    try:
        which, nodes = evolution.lineage(context_of(runtime).store, run)
    except Problem:
        return "No evolution run yet."
    lines = []

    def walk(nodes, depth):
        for n in nodes:
            fit = "-" if n["fitness"] is None else f"{n['fitness']:.2f}"
            lines.append(f"{'  ' * depth}#{n['id']} gen {n['generation']} {n['operator']} parents {n['parents']}"
                         f" fitness {fit} {n['status']}")
            walk(n["children"], depth + 1)

    walk(nodes, 0)
    return f"Run {which}:\n" + "\n".join(lines) if lines else f"Run {which} has no genomes."


@tool
def promote_variant(genome: int, runtime: ToolRuntime[Context]) -> str:
    """Promote one evolved variant (a genome id from show_lineage) to serve, on probation."""
    ctx = context_of(runtime, "promoting an evolved variant")
    try:
        return evolution.promote(ctx, genome, who="the agent")
    except Problem as exc:
        raise ToolException(str(exc)) from None


@tool
def rollback_variant(runtime: ToolRuntime[Context]) -> str:
    """Undo the promoted evolved variant (back to the prompt before it)."""
    ctx = context_of(runtime, "rolling back an evolved variant")
    try:
        undone, back = evolution.rollback(ctx, "rolled back by the agent", by="(agent tool)")
    except Problem as exc:
        raise ToolException(str(exc)) from None
    return f"Prompt version {undone.id} (from evolution) rolled back; version {back.id} serves again."


for _t in (start_evolution, train_lora, promote_variant, rollback_variant):
    _t.metadata = {"acts": "self"}
TOOLS = [start_evolution, train_lora, evolution_status, show_lineage, promote_variant, rollback_variant]
