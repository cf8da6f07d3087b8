"""Evolution as data, and acting on it: starting a run (in the background, or here with
progress events), the runs so far, the last run's state, a run's lineage, promoting an
archived genome by hand, and rolling back the version evolution promoted.

Exposes: busy(store), start(ctx, trigger, settings, lora), run(ctx, trigger, show, settings), runs(store,
last), status(store), lineage(store, run), promote(ctx, genome_id, who), rollback(ctx, why, by).
Does not own: the subgraph (evolution/graph.py), the archive (evolution/archive.py), the
background process (evolution/runs.py) or the prompt's rollback (actions/prompt.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from graph.actions import Problem

if TYPE_CHECKING:
    from graph.context import Context
    from graph.learning.selfprompt import Version
    from graph.store import Store


def busy(store: Store) -> str:
    """Why no new run can start now (a run is going), or ''."""
    from graph.evolution import archive

    return archive.busy(store) or ""


def start(ctx: Context, trigger: str, settings: dict | None = None, lora: bool = False) -> int:
    """A run in a background process (the chat never waits); returns its process id. Problem
    when a run is going already, or (lora) when LoRA adapters cannot be trained now."""
    from graph.evolution import adapt, runs

    store = ctx.store
    if why := busy(store):
        raise Problem(why)
    if lora and (why := adapt.skip(ctx, store, "on")):
        raise Problem(f"no LoRA training now: {why}")
    return runs.start_background(ctx, trigger, {**(settings or {}), **({"lora": "on"} if lora else {})})


def run(ctx: Context, trigger: str, show: Callable[[dict], None] | None = None, settings: dict | None = None) -> dict:
    """A run here, until it ends (`show` gets its progress events); returns its archive row with
    its summary. Problem when a run is going already or the run failed (what was scored is
    kept); Ctrl-C (KeyboardInterrupt) stops it, marked stopped."""
    from graph.evolution import archive
    from graph.evolution.adapt import AdaptError
    from graph.evolution.graph import evolve
    from graph.evolution.lora import LoraUnavailable
    from graph.models import llm

    if why := busy(ctx.store):
        raise Problem(why)
    try:
        return evolve(ctx, trigger, show, **(settings or {}))
    except archive.Busy as exc:
        raise Problem(str(exc)) from None
    except (llm.BackendError, AdaptError, LoraUnavailable) as exc:
        raise Problem(f"evolution failed: {exc} (what was scored is kept)") from None


def runs(store: Store, last: int = 20) -> list[dict]:
    """The latest `last` runs, oldest first, with their summaries."""
    from graph.evolution import archive

    return archive.runs(store, last)


def status(store: Store) -> dict:
    """The last run: its state, progress and decision ({} before the first run)."""
    from graph.evolution import runs as background

    return background.summary(store)


def lineage(store: Store, run_id: int | None = None) -> tuple[int, list[dict]]:
    """(run, its genomes as trees by parent): run `run_id`, or the last run when None.
    Problem before the first run."""
    from graph.evolution import archive

    which = run_id or (archive.runs(store, 1) or [{}])[-1].get("id")
    if not which:
        raise Problem("no evolution runs yet: `agent.py evolve` starts one")
    return which, archive.lineage(store, which)


def promote(ctx: Context, genome_id: int, who: str = "the user") -> str:
    """Make an archived genome serve now, on probation; the line says what was done."""
    from graph.evolution import runs as background

    try:
        return background.promote_genome_by_hand(ctx, genome_id, who)
    except ValueError as exc:
        raise Problem(str(exc)) from None


def rollback(ctx: Context, why: str, by: str = "by the user") -> tuple[Version, Version]:
    """Undo the prompt version evolution promoted (and detach its evolved settings); logged.
    Returns (undone, serving again)."""
    from graph.actions import prompt

    return prompt.rollback(ctx, why, by, evolved_only=True)
