"""The web UI's evolution page: the runs, starting one (in a background process) with its progress
shown as it goes, the fitness of every genome per generation as a chart, the lineage as a graph
(parents, operator, fitness, status), and buttons to promote an archived genome or roll back the
prompt evolution promoted.

Owns: how those look in the browser. Does not own: the runs, the archive or the promotions
(graph/actions/evolution.py).
"""

from __future__ import annotations

import json
import time

import altair as alt
import pandas as pd
import streamlit as st

from graph.actions import Problem, evolution
from graph.web.ui.live import Desk

RUNS = 20


def page(desk: Desk) -> None:
    st.header("Evolution")
    progress(desk)
    listed = evolution.runs(desk.session.store, RUNS)
    if not listed:
        st.caption("no evolution runs yet")
        return
    st.dataframe(pd.DataFrame([{"run": r["id"], "status": r["status"], "trigger": r["trigger"],
                                "started": _when(r["started"]), "finished": _when(r["finished"]),
                                "decision": r["summary"].get("decision") or r["summary"].get("error", "")}
                               for r in reversed(listed)]), hide_index=True)
    chosen = st.selectbox("run", [r["id"] for r in reversed(listed)])
    run, roots = evolution.lineage(desk.session.store, chosen)
    genomes = flatten(roots)
    if not genomes:
        st.caption(f"run {run} has no genomes yet")
        return
    fitness(genomes)
    st.subheader("Lineage")
    st.graphviz_chart(lineage_dot(genomes))
    st.text("\n".join(lineage_line(g) for g in genomes))
    actions(desk, genomes)


@st.fragment(run_every=2)
def progress(desk: Desk) -> None:
    """The last run's state (redrawn while it runs), and the button that starts one."""
    store = desk.session.store
    info = evolution.status(store)
    if info:
        p = info["progress"]
        if info["status"] == "running":
            where = f"generation {p.get('generation', 0)}"
            if p.get("stage") == "scoring":
                where += f", genome {p.get('member')}/{p.get('members')}, case {p.get('case')}/{p.get('cases')}"
                st.progress(min(1.0, (p.get("member") or 0) / max(1, p.get("members") or 1)))
            st.info(f"run {info['run']} is running: {p.get('stage', 'starting')}, {where}", icon="⏳")
        else:
            st.caption(f"last run {info['run']}: {info['status']} — {info['decision']}")
    busy = evolution.busy(store)
    st.button("Start an evolution run", disabled=bool(busy), help=busy or "runs in a background process",
              on_click=_start, args=(desk,))


def _start(desk: Desk) -> None:
    try:
        pid = evolution.start(desk.session.ctx, "web UI")
    except Problem as exc:
        st.toast(str(exc), icon="⚠️")
        return
    st.toast(f"evolution run started (process {pid})")


def flatten(roots: list[dict]) -> list[dict]:
    out, todo = [], list(roots)
    while todo:
        node = todo.pop(0)
        out.append(node)
        todo.extend(node.get("children", []))
    return sorted(out, key=lambda g: g["id"])


def fitness(genomes: list[dict]) -> None:
    st.subheader("Fitness per generation")
    scored = pd.DataFrame([{"genome": g["id"], "generation": g["generation"], "fitness": g["fitness"],
                            "operator": g["operator"], "status": g["status"]} for g in genomes
                           if g["fitness"] is not None])
    if scored.empty:
        st.caption("no genome scored yet")
        return
    best = scored.groupby("generation", as_index=False)["fitness"].max()
    x = alt.X("generation:Q", axis=alt.Axis(tickMinStep=1))
    points = alt.Chart(scored).mark_circle(size=70).encode(
        x=x, y=alt.Y("fitness:Q", scale=alt.Scale(domain=[0, 1])), color=alt.Color("status:N"),
        tooltip=["genome", "generation", "fitness", "operator", "status"])
    line = alt.Chart(best).mark_line(color="#888").encode(x=x, y=alt.Y("fitness:Q"))
    st.altair_chart(points + line, width="stretch")


def lineage_dot(genomes: list[dict]) -> str:
    """The family tree in Graphviz's DOT: one node per genome, an edge from each parent."""
    known = {g["id"] for g in genomes}
    lines = ["digraph lineage {", "rankdir=LR;", 'node [shape=box, style="rounded,filled", fillcolor="#f5f5f5"];']
    for g in genomes:
        score = "—" if g["fitness"] is None else f"{g['fitness']:.2f}"
        label = f"#{g['id']} gen {g['generation']}\\n{g['operator']} · {score}\\n{g['status']}"
        color = {"promoted": "#c8e6c9", "invalid": "#ffcdd2"}.get(g["status"], "#f5f5f5")
        lines.append(f"g{g['id']} [label={json.dumps(label, ensure_ascii=False)}, fillcolor=\"{color}\"];")
        lines.extend(f"g{p} -> g{g['id']};" for p in g["parents"] if p in known)
    return "\n".join(lines + ["}"])


def lineage_line(g: dict) -> str:
    parents = " × ".join(f"#{p}" for p in g["parents"])
    score = "not scored" if g["fitness"] is None else f"fitness {g['fitness']:.2f}"
    origin = f"{g['operator']} of {parents}" if parents else g["operator"]
    return f"#{g['id']} gen {g['generation']} · {origin} · {score} · {g['status']}"


def actions(desk: Desk, genomes: list[dict]) -> None:
    scored = [g for g in genomes if g["fitness"] is not None]
    left, right = st.columns(2)
    if scored:
        best = max(scored, key=lambda g: g["fitness"])
        chosen = left.selectbox("genome", [g["id"] for g in scored], index=scored.index(best),
                                format_func=lambda i: next(f"#{g['id']} · fitness {g['fitness']:.2f} · {g['status']}"
                                                           for g in scored if g["id"] == i))
        left.button("Promote this genome", on_click=_promote, args=(desk, chosen),
                    help="it serves at once, on probation (rolled back if the rewards fall)")
    right.button("Roll back the evolved prompt", on_click=_rollback, args=(desk,))


def _promote(desk: Desk, genome: int) -> None:
    try:
        st.toast(evolution.promote(desk.session.ctx, genome))
    except Problem as exc:
        st.toast(str(exc), icon="⚠️")


def _rollback(desk: Desk) -> None:
    try:
        undone, back = evolution.rollback(desk.session.ctx, "rolled back in the web UI")
    except Problem as exc:
        st.toast(str(exc), icon="⚠️")
        return
    st.toast(f"version {undone.id} rolled back: version {back.id} serves again")


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else "—"
