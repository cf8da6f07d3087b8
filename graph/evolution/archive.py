"""The evolution archive: every run and every genome ever bred, in SQLite, with lineage.

A genome is {system prompt, LoRA adapter or none, sampling settings}. Each is kept with its
run, generation, parents, the operator that made it, its score on every evaluation case and
their mean (its fitness), and a status: `new` (not scored yet), `scored`, `invalid` (the
child failed validation; the note says why), `promoted` (it serves the agent now or did).
Runs are kept with their trigger, settings, live progress (what `status` shows) and summary.
Does not own: breeding (operators.py), scoring (fitness.py) or the loop (graph.py).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import psutil

from graph.store import Store

STATUSES = ("new", "scored", "invalid", "promoted")


@dataclass
class Genome:
    prompt: str
    lora: str | None = None  # adapter folder (PEFT) or None
    sampling: dict = field(default_factory=dict)  # {"temperature": float}
    parents: list[int] = field(default_factory=list)
    operator: str = "seed"
    generation: int = 0
    run: int = 0
    scores: dict[str, float] | None = None  # case id -> 0..1
    fitness: float | None = None
    status: str = "new"
    note: str = ""
    feedback: list[dict] = field(default_factory=list)  # its worst cases: question, answer, score, why
    id: int | None = None

    def as_dict(self) -> dict:
        return {"id": self.id, "run": self.run, "generation": self.generation, "operator": self.operator,
                "parents": self.parents, "fitness": self.fitness, "status": self.status, "note": self.note,
                "prompt": self.prompt, "lora": self.lora, "sampling": self.sampling, "scores": self.scores}


COLUMNS = "id, run, generation, prompt, lora, sampling, parents, operator, scores, fitness, status, note, feedback"


def _genome(row: tuple) -> Genome:
    gid, run, gen, prompt, lora, sampling, parents, operator, scores, fitness, status, note, feedback = row
    return Genome(prompt, lora, json.loads(sampling), json.loads(parents), operator, gen, run,
                  json.loads(scores) if scores else None, fitness, status, note, json.loads(feedback or "[]"), gid)


def add(store: Store, genome: Genome) -> Genome:
    with store.write() as db:
        cur = db.execute(
            "INSERT INTO genomes (run, generation, prompt, lora, sampling, parents, operator, scores, fitness,"
            " status, note, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (genome.run, genome.generation, genome.prompt, genome.lora, json.dumps(genome.sampling),
             json.dumps(genome.parents), genome.operator, json.dumps(genome.scores) if genome.scores else None,
             genome.fitness, genome.status, genome.note, time.time()))
    genome.id = cur.lastrowid
    return genome


def scored(store: Store, genome: Genome, scores: dict[str, float], feedback: list[dict]) -> Genome:
    genome.scores, genome.feedback, genome.status = scores, feedback, "scored"
    genome.fitness = round(sum(scores.values()) / len(scores), 4) if scores else 0.0
    with store.write() as db:
        db.execute("UPDATE genomes SET scores=?, fitness=?, status=?, feedback=? WHERE id=?",
                   (json.dumps(scores), genome.fitness, genome.status, json.dumps(feedback, ensure_ascii=False),
                    genome.id))
    return genome


def mark(store: Store, genome_id: int, status: str, note: str) -> None:
    with store.write() as db:
        db.execute("UPDATE genomes SET status=?, note=? WHERE id=?", (status, note, genome_id))


def get(store: Store, genome_id: int) -> Genome | None:
    rows = store.read(f"SELECT {COLUMNS} FROM genomes WHERE id=?", (genome_id,))
    return _genome(rows[0]) if rows else None


def of_run(store: Store, run: int) -> list[Genome]:
    return [_genome(r) for r in store.read(f"SELECT {COLUMNS} FROM genomes WHERE run=? ORDER BY id", (run,))]


def last_adapter(store: Store) -> Genome | None:
    """The LoRA genome archived last."""
    rows = store.read(f"SELECT {COLUMNS} FROM genomes WHERE lora IS NOT NULL AND lora != '' ORDER BY id DESC LIMIT 1")
    return _genome(rows[0]) if rows else None


def promoted(store: Store) -> Genome | None:
    """The genome promoted last (it may have been rolled back since: see selfprompt)."""
    rows = store.read(f"SELECT {COLUMNS} FROM genomes WHERE status='promoted' ORDER BY id DESC LIMIT 1")
    return _genome(rows[0]) if rows else None


# ------------------------------------------------------------------ runs


class Busy(Exception):
    """Another evolution run is going (in a live process): one at a time per data folder."""


def start(store: Store, trigger: str, settings: dict) -> int:
    """A new run (status `running`). Atomic across processes: with a run of a live process
    going, raises Busy; a run left `running` by a dead process is closed as failed."""
    with store.write() as db:
        for run_id, pid, started in db.execute("SELECT id, pid, started FROM evolution_runs WHERE status='running'"):
            if why := _going(run_id, pid, started):
                raise Busy(why)
            db.execute("UPDATE evolution_runs SET status='failed', finished=?, summary=? WHERE id=?",
                       (time.time(), json.dumps({"error": "the process stopped before the run ended"}), run_id))
        cur = db.execute("INSERT INTO evolution_runs (started, status, trigger, settings, pid) VALUES (?,?,?,?,?)",
                         (time.time(), "running", trigger, json.dumps(settings), os.getpid()))
    return cur.lastrowid


def busy(store: Store) -> str | None:
    """Why a new run cannot start now (a run of a live process is going), or None."""
    rows = store.read("SELECT id, pid, started FROM evolution_runs WHERE status='running'")
    return next((why for row in rows if (why := _going(*row))), None)


def _going(run_id: int, pid: int | None, started: float) -> str:
    if not (pid and psutil.pid_exists(pid)):
        return ""
    return (f"evolution run {run_id} is already going (process {pid}, started "
            f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(started))})")


def progress(store: Store, run: int, **state) -> None:
    with store.write() as db:
        db.execute("UPDATE evolution_runs SET progress=? WHERE id=?", (json.dumps(state, ensure_ascii=False), run))


def finish(store: Store, run: int, status: str, summary: dict) -> None:
    with store.write() as db:
        db.execute("UPDATE evolution_runs SET status=?, finished=?, summary=? WHERE id=?",
                   (status, time.time(), json.dumps(summary, ensure_ascii=False), run))


def abandon(store: Store, status: str, summary: dict) -> None:
    """Close this process's running run (it failed or was stopped): what it scored stays archived."""
    with store.write() as db:
        db.execute("UPDATE evolution_runs SET status=?, finished=?, summary=? WHERE status='running' AND pid=?",
                   (status, time.time(), json.dumps(summary, ensure_ascii=False), os.getpid()))


RUN_COLUMNS = "id, started, finished, status, trigger, settings, progress, summary"


def _run(r: tuple) -> dict:
    return {"id": r[0], "started": r[1], "finished": r[2], "status": r[3], "trigger": r[4],
            "settings": json.loads(r[5]), "progress": json.loads(r[6]), "summary": json.loads(r[7])}


def runs(store: Store, last: int = 10) -> list[dict]:
    """The last `last` runs, oldest first."""
    rows = store.read(f"SELECT {RUN_COLUMNS} FROM evolution_runs ORDER BY id DESC LIMIT ?", (last,))
    return [_run(r) for r in reversed(rows)]


def run(store: Store, run_id: int) -> dict | None:
    rows = store.read(f"SELECT {RUN_COLUMNS} FROM evolution_runs WHERE id=?", (run_id,))
    return _run(rows[0]) if rows else None


def last_start(store: Store) -> float | None:
    rows = store.read("SELECT MAX(started) FROM evolution_runs")
    return rows[0][0] if rows else None


def lineage(store: Store, run: int | None = None) -> list[dict]:
    """Every genome (of one run, or all) as a node of the family tree: id, parents, operator,
    generation, fitness, status; children listed under their first parent."""
    where, args = ("WHERE run=?", (run,)) if run else ("", ())
    rows = [_genome(r) for r in store.read(f"SELECT {COLUMNS} FROM genomes {where} ORDER BY id", args)]
    known = {g.id for g in rows}
    nodes = {g.id: {**g.as_dict(), "children": []} for g in rows}
    roots = []
    for g in rows:
        first = next((p for p in g.parents if p in known), None)
        (nodes[first]["children"] if first else roots).append(nodes[g.id])
    return roots

