"""`adapt`: the LoRA stage of a run, after the seed: adapters trained on the tuning data and
crossed by a CMA-ES-searched TIES merge (evolution/adapt.py), each a genome; skipped, with the
reason in the run's progress, where it cannot run (an error with `lora: on`).

Does not own: training, merging and archiving the adapters (evolution/adapt.py, lora.py).
"""

from __future__ import annotations

from langgraph.runtime import Runtime

from graph.context import Context, of
from graph.evolution.adapt import AdaptError, breed, skip
from graph.evolution.state import say
from graph.models import adapters


def adapt(state: dict, runtime: Runtime[Context]) -> dict:
    ctx = of(runtime)
    store = ctx.store
    run = state["run"]

    def progress(**shown) -> None:
        say(runtime, store, run, generation=0, **shown)

    from graph.evolution.lora import LoraUnavailable  # (cheap: lora.py imports torch & co. lazily)

    mode = state.get("lora") or ctx.settings.evolution.lora
    why = skip(ctx, store, mode)
    if not why:
        try:
            return {"members": [*state["members"], *breed(ctx, store, state, progress)]}
        except (LoraUnavailable, adapters.AdapterError) as exc:  # a missing package, unusable weights
            why = str(exc)
    if mode == "on":
        raise AdaptError(f"no LoRA adapters: {why}")
    progress(stage="adapters skipped", why=why)
    return {}
