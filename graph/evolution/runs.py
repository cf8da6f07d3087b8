"""Evolution runs seen from outside the subgraph: starting one in a background process (the
chat never waits for evolution; after `evolution.every_turns` turns the session starts one
by itself), promoting an archived genome by hand, and the last run's summary for `status`.

Owns: those steps, shared by the CLI (graph/cli/evolve.py), the REPL's /evolve, the agent's tools
(tools/evolve.py) and the session's upkeep. Does not own: the subgraph (graph.py), the
archive (archive.py) or any layout (graph/cli/evolve.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from graph.context import Context
from graph.evolution import archive

AGENT = Path(__file__).resolve().parents[2] / "agent.py"


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
    Path(ctx.home).mkdir(parents=True, exist_ok=True)
    log = open(Path(ctx.home) / "evolution.log", "ab")  # noqa: SIM115 - the child owns it
    kwargs = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt" else {"start_new_session": True}
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=ctx.home, **kwargs)
    log.close()
    return child.pid


def auto_start(ctx: Context, store) -> str:
    """After a turn: start a background run when `evolution.every_turns` turns have passed since
    the last run started (and learning is on and not frozen). Returns a notice, or ''."""
    from graph.learning import guard

    every = ctx.settings.evolution.every_turns
    if not every or not ctx.settings.learning.enabled or guard.frozen(store) or archive.busy(store):
        return ""
    since = store.read("SELECT COUNT(*) FROM (SELECT 1 FROM rewards WHERE created > ? LIMIT ?)",
                       (archive.last_start(store) or 0, every))[0][0]  # counted up to `every`: each turn asks
    if since < every:
        return ""
    pid = start_background(ctx, "auto", {})
    return (f"{since} turns since the last evolution: a run started in the background (process {pid};"
            " `agent.py status` shows it, evolution.every_turns sets how often)")


def promote_genome_by_hand(ctx: Context, genome_id: int, who: str = "the user") -> str:
    """Promote an archived genome (the CLI's --promote, the agent's tool); ValueError says why not."""
    from graph.evolution.nodes.promote import promote_genome

    genome = archive.get(ctx.store, genome_id)
    if genome is None or genome.status not in ("scored", "promoted"):
        raise ValueError(f"genome #{genome_id} {'is not scored' if genome else 'does not exist'}"
                         " (`agent.py evolve --lineage` lists them)")
    if genome.lora and not Path(genome.lora).is_file():
        raise ValueError(f"genome #{genome_id}'s adapter is gone ({genome.lora}): only the last run and the adapter serving are kept")
    try:
        return promote_genome(ctx, genome, f"promoted by {who} (fitness {genome.fitness:.3f} in run {genome.run})")
    except ValueError as exc:
        raise ValueError(f"genome #{genome.id} cannot serve: {exc}") from None


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
