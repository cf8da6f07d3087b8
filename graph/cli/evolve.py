"""`agent.py evolve` and the REPL's /evolve: run the evolution subgraph with a progress bar
and a summary table, or show the runs and the lineage, or promote / roll back a variant by hand.

    evolve [--generations N] [--population P] [--budget-minutes M] [--background]
    evolve --runs | --lineage [RUN] | --promote GENOME | --rollback     [--json]

Owns: the command's parser, those actions on parsed arguments (an expected failure is one
`error:` line and exit 1; Ctrl-C exits 130 with the run marked stopped) and the layouts of
runs, generations and the lineage tree. Does not own: the actions (actions/evolution.py), the
subgraph (evolution/graph.py) or the archive (evolution/archive.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from graph.actions import Problem
from graph.actions import evolution as act
from graph.cli.args import count, minutes
from graph.cli.output import fail

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.tree import Tree

    from graph.context import Context


def add(sub, common: argparse.ArgumentParser, js: argparse.ArgumentParser) -> None:
    ev = sub.add_parser("evolve", parents=[common, js],
                        help="evolve prompt, sampling and LoRA adapter variants (crossover, mutation, selection); lineage, promote",
                        description="With no option: one evolution run (progress, then a table per generation). "
                                    "Safe from cron while the REPL is open: one run at a time per data folder.")
    ev.add_argument("--generations", type=count, metavar="N", help="breeding rounds (default: evolution.generations)")
    ev.add_argument("--population", type=lambda v: max(2, count(v)), metavar="P", help="genomes per generation (default: evolution.population)")
    ev.add_argument("--budget-minutes", type=minutes, metavar="M", help="stop breeding after M minutes (default: config)")
    ev.add_argument("--lora", choices=["auto", "on", "off"],
                    help="LoRA adapters in this run: on = train and cross them (an error when it cannot), "
                         "off = prompts and sampling only (default: evolution.lora)")
    ev.add_argument("--background", action="store_true", help="run in a background process and return at once")
    ev.add_argument("--trigger", default="cli", choices=["cli", "cron", "auto", "tool"], help=argparse.SUPPRESS)
    shown = ev.add_mutually_exclusive_group()
    shown.add_argument("--runs", action="store_true", help="the runs so far, with their outcome")
    shown.add_argument("--lineage", type=count, nargs="?", const=0, metavar="RUN",
                       help="the family tree of a run's genomes (default: the last run)")
    shown.add_argument("--promote", type=count, metavar="GENOME", help="make this genome serve now (on probation)")
    shown.add_argument("--rollback", action="store_true", help="undo the prompt version evolution promoted")
    ev.set_defaults(run=main)


def main(args, ctx: Context, console: Console) -> int:
    ctx.settings  # noqa: B018 - a bad config is one clear error before anything runs
    args.json = getattr(args, "json", False)  # (--json is only set when given)
    store = ctx.store
    settings = {"generations": args.generations, "population": args.population, "budget_minutes": args.budget_minutes,
                "lora": args.lora}
    try:
        if args.runs:
            rows = act.runs(store, 20)
            return _out(args, console, rows, runs_table(rows) if rows else "no evolution runs yet")
        if args.lineage is not None:
            which, nodes = act.lineage(store, args.lineage or None)
            return _out(args, console, nodes, lineage_tree(which, nodes) if nodes else f"run {which} has no genomes")
        if args.promote is not None:
            done = act.promote(ctx, args.promote)
            return _out(args, console, {"done": done}, done)
        if args.rollback:
            undone, back = act.rollback(ctx, "rolled back by the user (agent.py evolve --rollback)")
            return _out(args, console, {"undone": undone.id, "serving": back.id},
                        f"prompt version {undone.id} (from evolution) rolled back; version {back.id} serves again")
        if args.background:
            pid = act.start(ctx, "cli", settings)
            console.print(f"evolution started in the background (process {pid}); `agent.py status` shows its progress",
                          highlight=False)
            return 0
        if why := act.busy(store):  # before the progress bars appear
            return fail(why)
        return run(args, ctx, console, settings)
    except Problem as exc:
        return fail(str(exc))


def run(args, ctx: Context, console: Console, settings: dict) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    e = ctx.settings.evolution
    generations = settings["generations"] or e.generations
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True, disable=args.json) as bars:
        overall = bars.add_task("generations", total=generations + 1)
        member = bars.add_task("genome", total=1)

        def show(event: dict) -> None:
            stage = event["stage"]
            if stage == "scoring":
                bars.update(member, description=f"gen {event['generation']}: genome {event['member']}/"
                                                f"{event['members']} (#{event['genome']}), case",
                            completed=event["case"], total=event["cases"])
            elif stage == "selected":
                bars.update(overall, completed=event["generation"] + 1,
                            description=f"generations (best {event['best']:.3f})" if event["best"] is not None
                            else "generations")
            elif stage == "adapters skipped":
                bars.console.print(f"LoRA adapters skipped: {event['why']}", highlight=False)
            elif stage not in ("seeded", "done"):  # breeding, confirming, the LoRA stage's steps
                done = event.get("step", event.get("iteration", 0))
                bars.update(member, description=f"{stage} …", completed=done,
                            total=event.get("steps", event.get("iterations")) or max(done, 1))

        try:
            result = act.run(ctx, args.trigger, show, settings)
        except KeyboardInterrupt:
            print("evolution stopped: what was scored is kept (`agent.py evolve --lineage`)", file=sys.stderr)
            return 130
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    console.print(generations_table(result))
    console.print(result["summary"].get("decision", ""), highlight=False)
    return 0


# ------------------------------------------------------------------ layouts


def runs_table(rows: list[dict]) -> Table:
    from rich.table import Table

    table = Table(title="evolution runs", title_justify="left")
    for column in ("run", "started", "trigger", "status", "generations", "best", "decision"):
        table.add_column(column, overflow="fold")
    for r in rows:
        gens = r["summary"].get("generations") or []
        best = max((g["best"] for g in gens if g["best"] is not None), default=None)
        state = r["status"] if r["status"] != "running" else f"running ({r['progress'].get('stage', '')})"
        table.add_row(str(r["id"]), time.strftime("%Y-%m-%d %H:%M", time.localtime(r["started"])), r["trigger"], state,
                      str(len(gens)), f"{best:.3f}" if best is not None else "-",
                      r["summary"].get("decision") or r["summary"].get("error", ""))
    return table


def generations_table(result: dict) -> Table:
    from rich.table import Table

    took = (result["finished"] or time.time()) - result["started"]
    table = Table(title=f"evolution run {result['id']}: {result['status']} in {took:.0f} s", title_justify="left")
    for column in ("generation", "best fitness", "mean", "Pareto front", "scored"):
        table.add_column(column, justify="right")
    for row in result["summary"].get("generations", []):
        table.add_row(str(row["generation"]), _num(row["best"]), _num(row["mean"]), str(row["front"]),
                      str(row["scored"]))
    return table


def lineage_tree(run: int, nodes: list[dict]) -> Tree:
    from rich.tree import Tree

    from graph.learning import selfprompt

    tree = Tree(f"run {run}: genomes by parent (crossover children list their other parent)")

    def add(branch, node):
        rules = selfprompt.split(node["prompt"])[1]
        other = [f"#{p}" for p in node["parents"][1:]]
        label = (f"#{node['id']} gen {node['generation']} {node['operator']}{' × ' + ', '.join(other) if other else ''}"
                 f"  fitness {_num(node['fitness'])}  {node['status']}"
                 f"  temp {node['sampling'].get('temperature', '-')}  rules {len(rules)}")
        if node["status"] == "invalid":
            label += f"  ({node['note']})"
        child = branch.add(label, style="bold green" if node["status"] == "promoted" else
                           "dim" if node["status"] == "invalid" else "")
        for sub in node["children"]:
            add(child, sub)

    for node in nodes:
        add(tree, node)
    return tree


def _num(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def _out(args, console: Console, data, shown) -> int:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=1))
    else:
        console.print(shown, highlight=False)
    return 0
