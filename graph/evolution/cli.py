"""`agent.py evolve`: run the evolution subgraph with a progress bar and a summary table, or
show the runs and the lineage, or promote / roll back a variant by hand.

    evolve [--generations N] [--population P] [--budget-minutes M] [--background]
    evolve --runs | --lineage [RUN] | --promote GENOME | --rollback     [--json]

Owns: those actions on parsed arguments (an expected failure is one `error:` line and exit 1;
Ctrl-C exits 130 with the run marked stopped), starting a run in a background process (the
chat never waits for evolution; after `evolution.every_turns` turns the session starts one
by itself), and the layouts of runs, generations and the lineage tree.
Does not own: the subgraph (graph.py), the archive (archive.py), parsing (agent.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from graph import selfprompt
from graph.context import Context
from graph.evolution import archive
from graph.store import store_for

AGENT = Path(__file__).resolve().parents[2] / "agent.py"


def main(args, ctx: Context, console: Console) -> int:
    ctx.settings  # noqa: B018 - a bad config is one clear error before anything runs
    args.json = getattr(args, "json", False)  # (--json is only set when given)
    store = store_for(ctx.home)
    if args.runs:
        rows = archive.runs(store, 20)
        return _out(args, console, rows, runs_table(rows) if rows else "no evolution runs yet")
    if args.lineage is not None:
        which = args.lineage or (archive.runs(store, 1) or [{}])[-1].get("id")
        if not which:
            return _fail("no evolution runs yet: `agent.py evolve` starts one")
        nodes = archive.lineage(store, which)
        return _out(args, console, nodes, lineage_tree(which, nodes) if nodes else f"run {which} has no genomes")
    if args.promote is not None:
        return promote(args, ctx, console, store)
    if args.rollback:
        return rollback(args, ctx, console, store)
    settings = {"generations": args.generations, "population": args.population, "budget_minutes": args.budget_minutes,
                "lora": args.lora}
    if args.background:
        pid = start_background(ctx, "cli", settings)
        console.print(f"evolution started in the background (process {pid}); `agent.py status` shows its progress",
                      highlight=False)
        return 0
    return run(args, ctx, console, settings)


def run(args, ctx: Context, console: Console, settings: dict) -> int:
    from graph import llm
    from graph.evolution.adapt import AdaptError
    from graph.evolution.graph import evolve
    from graph.evolution.lora import LoraUnavailable

    if why := archive.busy(store_for(ctx.home)):
        return _fail(why)
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
            result = evolve(ctx, args.trigger, show, **settings)
        except archive.Busy as exc:
            return _fail(str(exc))
        except KeyboardInterrupt:
            print("evolution stopped: what was scored is kept (`agent.py evolve --lineage`)", file=sys.stderr)
            return 130
        except (llm.BackendError, AdaptError, LoraUnavailable) as exc:
            return _fail(f"evolution failed: {exc} (what was scored is kept)")
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    console.print(generations_table(result))
    console.print(result["summary"].get("decision", ""), highlight=False)
    return 0


def start_background(ctx: Context, trigger: str, settings: dict | None = None) -> int:
    """`agent.py evolve` in its own process (detached: it outlives the REPL); its output goes to
    DATA/evolution.log. Returns the process id."""
    command = [sys.executable, str(AGENT), "evolve", "--home", str(ctx.home), "--trigger", trigger]
    if ctx.config:
        command += ["--config", str(ctx.config)]
    if ctx.backend:  # the session's --backend holds for its evolution too
        command += ["--backend", ctx.backend]
    for flag, value in (settings or {}).items():
        if value:
            command += [f"--{flag.replace('_', '-')}", str(value)]
    log = open(Path(ctx.home) / "evolution.log", "ab")  # noqa: SIM115 - the child owns it
    kwargs = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {"start_new_session": True}
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=ctx.home, **kwargs)
    log.close()
    return child.pid


def auto_start(ctx: Context, store) -> str:
    """After a turn: start a background run when `evolution.every_turns` turns have passed since
    the last run started (and learning is on and not frozen). Returns a notice, or ''."""
    from graph import learning

    every = ctx.settings.evolution.every_turns
    if not every or not ctx.settings.learning.enabled or learning.frozen(store) or archive.busy(store):
        return ""
    since = store.read("SELECT COUNT(*) FROM rewards WHERE created > ?", (archive.last_start(store) or 0,))[0][0]
    if since < every:
        return ""
    pid = start_background(ctx, "auto", {})
    return (f"{since} turns since the last evolution: a run started in the background (process {pid};"
            " `agent.py status` shows it, evolution.every_turns sets how often)")


def promote(args, ctx: Context, console: Console, store) -> int:
    try:
        done = promote_genome_by_hand(ctx, args.promote)
    except ValueError as exc:
        return _fail(str(exc))
    return _out(args, console, {"done": done}, done)


def promote_genome_by_hand(ctx: Context, genome_id: int, who: str = "the user") -> str:
    """Promote an archived genome (the CLI's --promote, the agent's tool); ValueError says why not."""
    from graph.evolution.graph import promote_genome

    genome = archive.get(store_for(ctx.home), genome_id)
    if genome is None or genome.status not in ("scored", "promoted"):
        raise ValueError(f"genome #{genome_id} {'is not scored' if genome else 'does not exist'}"
                         " (`agent.py evolve --lineage` lists them)")
    if genome.lora and not Path(genome.lora).is_file():
        raise ValueError(f"genome #{genome_id}'s adapter is gone ({genome.lora}): only the last run and the adapter serving are kept")
    try:
        return promote_genome(ctx, genome, f"promoted by {who} (fitness {genome.fitness:.3f} in run {genome.run})")
    except ValueError as exc:
        raise ValueError(f"genome #{genome.id} cannot serve: {exc}") from None


def rollback(args, ctx: Context, console: Console, store) -> int:
    version = selfprompt.current(ctx)
    if version.author != "evolution":
        return _fail(f"the prompt in use (version {version.id}) is not from evolution: nothing to roll back"
                     " (`agent.py prompt rollback` undoes any version)")
    undone, back = selfprompt.rollback(ctx, "rolled back by the user (agent.py evolve --rollback)")
    selfprompt.attach(store, back.id, {})
    text = f"prompt version {undone.id} (from evolution) rolled back; version {back.id} serves again"
    return _out(args, console, {"undone": undone.id, "serving": back.id}, text)


# ------------------------------------------------------------------ layouts


def runs_table(rows: list[dict]) -> Table:
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
    took = (result["finished"] or time.time()) - result["started"]
    table = Table(title=f"evolution run {result['id']}: {result['status']} in {took:.0f} s", title_justify="left")
    for column in ("generation", "best fitness", "mean", "Pareto front", "scored"):
        table.add_column(column, justify="right")
    for row in result["summary"].get("generations", []):
        table.add_row(str(row["generation"]), _num(row["best"]), _num(row["mean"]), str(row["front"]),
                      str(row["scored"]))
    return table


def lineage_tree(run: int, nodes: list[dict]) -> Tree:
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


def summary(store) -> dict:
    """The last run, for `status`."""
    rows = archive.runs(store, 1)
    if not rows:
        return {}
    r = rows[-1]
    if r["status"] == "running" and not archive.busy(store):  # killed: the next run will close it as failed
        r["status"], r["summary"] = "interrupted", {"error": "its process is gone (killed?); what it scored is kept"}
    return {"run": r["id"], "status": r["status"], "trigger": r["trigger"], "started": r["started"],
            "progress": r["progress"], "decision": r["summary"].get("decision") or r["summary"].get("error", "")}


def summary_line(info: dict) -> str:
    if not info:
        return "no runs yet (`agent.py evolve`)"
    head = f"run {info['run']} ({info['trigger']}, {time.strftime('%Y-%m-%d %H:%M', time.localtime(info['started']))})"
    p = info["progress"]
    if info["status"] == "running":
        where = f"generation {p.get('generation', 0)}"
        if p.get("stage") == "scoring":
            where += f", genome {p['member']}/{p['members']}, case {p['case']}/{p['cases']}"
        return f"{head}: running — {p.get('stage', 'starting')}, {where}"
    return f"{head}: {info['status']} — {info['decision']}"


def _num(value) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def _out(args, console: Console, data, shown) -> int:
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=1))
    else:
        console.print(shown, highlight=False)
    return 0


def _fail(text: str) -> int:
    print(f"error: {text}", file=sys.stderr)
    return 1
