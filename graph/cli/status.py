"""`agent.py status` and the REPL's /status: backend, model, data folder, turns, memories,
learning, evolution, live metrics, and the settings that differ from their defaults with
where each came from.

Owns: the command's parser and handler, gathering those facts into one JSON-ready dict, and
their layout. Does not own: the data (store.py), the backend (llm.py), the metrics
(monitor.py) or the learning and evolution summaries (cli/learning.py, evolution/runs.py).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

    from graph import llm
    from graph.context import Context
    from graph.store import Store


def add(sub, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("status", parents=[common], help="backend, model, data folder, turns, live metrics")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context, console) -> int:
    from graph.session import Session

    session = Session(ctx)
    info = status(ctx, session.store, session.backend)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=1))
    else:
        console.print(status_table(info))
    return 0


def status(ctx: Context, store: Store, backend: llm.Backend | None) -> dict:
    from graph import cpu, monitor
    from graph.cli import learning
    from graph.context import THREAD_ID
    from graph.evolution import runs

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

    from graph.context import Settings

    current, default = ctx.settings.model_dump(), Settings().model_dump()
    shown = {"llm.ollama.base_url": {"value": ctx.settings.llm.ollama.base_url,
                                     "from": ctx.origins.get("llm.ollama.base_url", "default")}}
    for key, where in ctx.origins.items():
        value = at(current, key)
        if value != at(default, key):
            secret = key.startswith("mcpServers.") and key.split(".")[2:3] in (["env"], ["headers"])
            shown[key] = {"value": "(set)" if secret else value, "from": where}
    return shown


def _embedded_line(info: dict) -> str:
    """llama.cpp's build, the CPU's features and the extra-buffer setting: what a bug report needs."""
    build = info["llama_cpp"]
    made = (f"llama-cpp-python {build['version']} built with {' '.join(build['features']) or 'no CPU extensions'}"
            if build["version"] else f"llama.cpp unusable: {build['error']}")
    flags = ", ".join(info["flags"]) or "no flags known"
    return f"{made}; CPU {info['cpu']} ({flags}); extra buffer types {info['extra_buffers_why']}"


def status_table(info: dict) -> Table:
    from rich.table import Table
    from rich.text import Text

    from graph.cli.learning import summary_line
    from graph.evolution.runs import summary_line as evolution_line

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    last = info["last_answer"]
    rows = [
        ("backend", f"{info['backend']} ({info['model']})" + (f" — configured: {info['configured_backend']}"
                                                           if info["configured_backend"] != info["backend"] else "")),
        ("data folder", info["data"]),
        ("config", info["config"]),
        ("settings", "\n".join(f"{key} = {_short(item['value'])}  ({item['from']})"
                               for key, item in info["settings"].items())),
        ("session", f"thread '{info['thread_id']}', {info['turns']} turns, database {info['db_bytes'] / 2**20:.1f} MB"),
        ("memories", "off (memory.enabled)" if info["memories"] is None else f"{info['memories']} active"),
        ("learning", summary_line(info["learning"])),
        ("evolution", evolution_line(info["evolution"])),
        ("last answer", "—" if not last.get("backend") else
         f"{last['ttft_s']} s to first token, {last['tok_s'] or '—'} tok/s, {last['tokens']} tokens ({last['backend']})"),
        ("GPU", "none" if not info["gpu"] else "; ".join(
            f"{g['name']}: {g['vram_used'] / 2**30:.1f} / {g['vram_total'] / 2**30:.1f} GB VRAM" for g in info["gpu"])),
        ("llama.cpp", _embedded_line(info["embedded"])),
        ("process", f"{info['process']['rss_mb']} MB RSS"),
        ("system", f"CPU {info['system']['cpu_percent']}%, RAM {info['system']['ram_used_gb']}"
                   f" / {info['system']['ram_total_gb']} GB"),
    ]
    for key, value in rows:
        table.add_row(key, Text(str(value)))
    plan = info.get("vram")
    if plan:
        table.add_row("num_ctx", Text(f"{plan['num_ctx']} ({plan['reason']})"))
        for warning in plan["warnings"]:
            table.add_row("warning", Text(warning, style="yellow"))
        for tip in plan["recommendations"]:
            table.add_row("recommended", Text(tip))
    if info.get("notice"):
        table.add_row("notice", Text(info["notice"], style="yellow"))
    return table


def _short(value, width: int = 60) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[:width] + "…"
