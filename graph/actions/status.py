"""The status snapshot: backend, model, data folder, turns, memories, learning, evolution,
live metrics, and the settings that differ from their defaults with where each came from.

Exposes: status(ctx, store, backend) -> a JSON-ready dict (what `agent.py status --json`
prints), settings_origins(ctx). Does not own: the data (store.py), the backend (llm.py),
the metrics (monitor.py), the learning and evolution summaries (actions/learning.py,
evolution/runs.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from graph.context import Context
    from graph.models import llm
    from graph.store import Store


def status(ctx: Context, store: Store, backend: llm.Backend | None) -> dict:
    from graph import monitor
    from graph.actions import learning
    from graph.context import THREAD_ID
    from graph.evolution import runs
    from graph.models import cpu

    snap = monitor.snapshot(ctx, store, backend, cpu_interval=0.1)
    last = store.last_answer_meta()
    return {
        "backend": backend.name if backend else None,
        "model": backend.model if backend else None,
        "notice": backend.notice if backend else None,
        "configured_backend": ctx.settings.llm.backend,
        "data": ctx.home,
        "config": ctx.config,
        "settings": settings_origins(ctx),
        "thread_id": THREAD_ID,
        "turns": store.turns(),
        "memories": snap["agent"]["memories"] if ctx.settings.memory.enabled else None,
        "learning": learning.summary(ctx, store),
        "evolution": runs.summary(store),
        "db_bytes": store.size_bytes(),
        "context_window": backend.context_window if backend else None,
        "vram": backend.plan.as_dict() if backend is not None and backend.plan else None,
        "embedded": cpu.report(ctx.settings.llm.embedded.extra_buffers),
        "last_answer": {k: last.get(k) for k in ("backend", "model", "ttft_s", "tok_s", "tokens", "seconds",
                                                  "context_tokens")},
        "gpu": snap["gpu"],
        "process": {"rss_mb": round(snap["system"]["process_rss"] / 2**20, 1)},
        "system": {"cpu_percent": snap["system"]["cpu_percent"], "ram_used_gb": round(snap["system"]["ram_used"] / 2**30, 2),
                   "ram_total_gb": round(snap["system"]["ram_total"] / 2**30, 2)},
    }


def settings_origins(ctx: Context) -> dict[str, dict]:
    """Every setting that differs from its default, and llm.ollama.base_url always, with its value
    and where it came from: a flag, an environment variable, the config file, or the default.
    The values of MCP servers' env and headers are not shown (they may be secrets)."""
    def at(tree: dict, key: str):
        for part in key.split("."):
            if not isinstance(tree, dict) or part not in tree:
                return None
            tree = tree[part]
        return tree

    from graph.config import Settings

    current, default = ctx.settings.model_dump(), Settings().model_dump()
    shown = {"llm.ollama.base_url": {"value": ctx.settings.llm.ollama.base_url,
                                     "from": ctx.origins.get("llm.ollama.base_url", "default")}}
    for key, where in ctx.origins.items():
        value = at(current, key)
        if value != at(default, key):
            secret = key.startswith("mcpServers.") and key.split(".")[2:3] in (["env"], ["headers"])
            shown[key] = {"value": "(set)" if secret else value, "from": where}
    return shown
