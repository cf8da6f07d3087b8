"""`agent.py monitor` (the live dashboard, one snapshot, or JSON) and `agent.py metrics` (the
turn metrics log, or following it).

Owns: those commands' parsers and handlers, and the dashboard's refresh loop.
Does not own: collecting and rendering the metrics (graph/monitor.py) or the turn log
(turnlog.py).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from graph.cli.args import count

if TYPE_CHECKING:
    from graph.context import Context


def add(sub, common: argparse.ArgumentParser) -> None:
    mon = sub.add_parser("monitor", parents=[common], help="live dashboard: model speed, GPU/VRAM, CPU/RAM, agent")
    mon.add_argument("--once", action="store_true", help="print one snapshot and exit")
    mon.add_argument("--json", action="store_true", help="one snapshot as JSON")
    mon.set_defaults(run=monitor)
    lg = sub.add_parser("metrics", parents=[common], help="the turn metrics log: latencies, tokens, backend, errors")
    lg.add_argument("--last", type=count, default=20, metavar="N", help="how many records (default 20)")
    lg.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    lg.add_argument("--json", action="store_true", help="JSON lines")
    lg.set_defaults(run=metrics)


def metrics(args: argparse.Namespace, ctx: Context, console) -> int:
    from graph import turnlog

    ctx.settings  # noqa: B018 - validate the config
    records = turnlog.follow(ctx.home, args.last) if args.follow else turnlog.read(ctx.home, args.last)
    if not args.follow and not records:
        console.print(f"no turns logged yet in {turnlog.path(ctx.home)}", highlight=False)
    try:
        for record in records:
            print(json.dumps(record, ensure_ascii=False) if args.json else turnlog.describe(record), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


def monitor(args: argparse.Namespace, ctx: Context, console) -> int:
    from rich.live import Live

    from graph import monitor as collect
    from graph.session import Session

    session = Session(ctx)

    def snap(cpu_interval: float | None = None) -> dict:
        return collect.snapshot(session.ctx, session.store, session.backend, cpu_interval)

    if args.json or args.once:
        current = snap(cpu_interval=0.2)
    if args.json:
        print(json.dumps(current, ensure_ascii=False, indent=1))
        return 0
    if args.once:
        console.print(collect.dashboard(current))
        return 0
    if session.ctx.settings.monitoring.prometheus_port:
        problem = collect.serve_prometheus(session.ctx.settings.monitoring.prometheus_port, snap)
        if problem:
            console.print(f"[yellow]! {problem}[/]", highlight=False)
            time.sleep(2)  # readable before the dashboard takes the screen
    history = collect.History()
    try:
        with Live(console=console, screen=True, auto_refresh=False) as live:
            while True:
                current = snap()
                history.add(current)
                live.update(collect.dashboard(current, history), refresh=True)
                time.sleep(session.ctx.settings.monitoring.refresh_s)
    except KeyboardInterrupt:
        return 0
