"""`agent.py status` and the REPL's /status: backend, model, data folder, turns, memories,
learning, evolution, live metrics, and the settings that differ from their defaults with
where each came from.

Owns: the command's parser and handler, and the snapshot's layout. Does not own: the
snapshot (actions/status.py) or the learning and evolution lines (cli/learning.py,
evolution/runs.py).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

    from graph.context import Context


def add(sub, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("status", parents=[common], help="backend, model, data folder, turns, live metrics")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context, console) -> int:
    from graph.actions.status import status
    from graph.session import Session

    session = Session(ctx)
    info = status(ctx, session.store, session.backend)
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=1))
    else:
        console.print(status_table(info))
    return 0


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
