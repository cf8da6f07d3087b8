"""The evolution subgraph's state, and what every one of its nodes reads from it or reports.

Owns: `EvolutionState` (what flows between the nodes: the run's settings, its generation and
members, its deadline and history), the run's settings with the config's defaults (`settings`),
the random generator of a run and generation (`rng`), and reporting progress (`say`: to the
archive and the stream).
Does not own: the nodes (nodes/), the wiring (graph.py) or the archive (archive.py).
"""

from __future__ import annotations

import random
from typing import TypedDict

from langgraph.runtime import Runtime

from graph.context import Context
from graph.evolution import archive


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


def run_settings(state: EvolutionState, ctx: Context) -> tuple[int, int, float]:
    e = ctx.settings.evolution
    return (state.get("generations") or e.generations, state.get("population") or e.population,
            state.get("budget_minutes") or e.budget_minutes)


def random_for(state: EvolutionState) -> random.Random:
    return random.Random(f"{state.get('rng_seed', 0)}:{state['run']}:{state.get('generation', 0)}")


def say(runtime: Runtime[Context], store, run: int, **state) -> None:
    archive.progress(store, run, **state)
    runtime.stream_writer({"evolution": {"run": run, **state}})
