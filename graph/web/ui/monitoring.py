"""The web UI's monitoring page: what `agent.py monitor` shows, as charts over time: VRAM and GPU
use, CPU and RAM, and per turn the speed (tokens per second), the time to the first token and
the context used.

Owns: sampling the machine in a background thread of the UI process (started on the first view
of this page, every monitoring.refresh_s, the last SAMPLES kept) and the charts. Does not own:
collecting a snapshot (graph/monitor.py) or the turn metrics log (turnlog.py).
"""

from __future__ import annotations

import threading
import time
from collections import deque

import altair as alt
import pandas as pd
import streamlit as st

from graph import monitor, turnlog
from graph.web.ui.live import Desk

SAMPLES = 900  # points on the machine charts (15 minutes at one a second)
TURNS = 200  # turns on the per-turn charts


class Sampler:
    """Snapshots of the machine every refresh_s, in a daemon thread, kept as flat rows."""

    def __init__(self, desk: Desk):
        self.desk, self.rows = desk, deque(maxlen=SAMPLES)
        self.problem = ""
        threading.Thread(target=self._loop, daemon=True, name="web-monitor").start()

    def _loop(self) -> None:
        session = self.desk.session
        while True:
            try:
                self.rows.append(flat(monitor.snapshot(session.ctx, session.store, session.backend)))
                self.problem = ""
            except Exception as exc:  # noqa: BLE001 - shown on the page; the next sample retries
                self.problem = f"monitoring failed: {type(exc).__name__}: {exc}"
            time.sleep(session.ctx.settings.monitoring.refresh_s)


def flat(snap: dict) -> dict:
    """A snapshot as one chart row: percentages and GiB."""
    gib = 2**30
    system, cards = snap["system"], snap["gpu"]
    row = {"time": pd.Timestamp.fromtimestamp(snap["time"]), "CPU %": system["cpu_percent"],
           "RAM used GiB": round(system["ram_used"] / gib, 2), "agent RSS GiB": round(system["process_rss"] / gib, 2)}
    if cards:
        row["VRAM used GiB"] = round(sum(c["vram_used"] for c in cards) / gib, 2)
        row["VRAM total GiB"] = round(sum(c["vram_total"] for c in cards) / gib, 2)
        utils = [c["util_percent"] for c in cards if c.get("util_percent") is not None]
        row["GPU %"] = sum(utils) / len(utils) if utils else None
    return row


@st.cache_resource
def sampler(_desk: Desk) -> Sampler:
    """The process's one sampler (Streamlit keeps it between page runs)."""
    return Sampler(_desk)


def page(desk: Desk) -> None:
    st.header("Monitoring")
    running = sampler(desk)
    machine(running)
    turns(desk)


@st.fragment(run_every=2)
def machine(running: Sampler) -> None:
    if running.problem:
        st.warning(running.problem, icon="⚠️")
    frame = pd.DataFrame(list(running.rows))
    if frame.empty:
        st.caption("collecting the first sample…")
        return
    last = frame.iloc[-1]
    figures = st.columns(4)
    figures[0].metric("CPU", f"{last['CPU %']:.0f} %")
    figures[1].metric("RAM used", f"{last['RAM used GiB']:.1f} GiB")
    figures[2].metric("agent process", f"{last['agent RSS GiB']:.2f} GiB")
    if "VRAM used GiB" in frame:
        figures[3].metric("VRAM used", f"{last['VRAM used GiB']:.1f} / {last['VRAM total GiB']:.1f} GiB")
        chart(frame, ["VRAM used GiB", "VRAM total GiB"], "VRAM (GiB)")
        chart(frame, ["GPU %"], "GPU use (%)")
    else:
        figures[3].metric("GPU", "none")
        st.caption("no NVIDIA GPU or driver: no VRAM or GPU charts")
    chart(frame, ["CPU %"], "CPU (%)")
    chart(frame, ["RAM used GiB", "agent RSS GiB"], "memory (GiB)")


def chart(frame: pd.DataFrame, columns: list[str], title: str, x: str = "time:T") -> None:
    long = frame.melt(id_vars=[x.split(":")[0]], value_vars=columns, var_name="series", value_name="value")
    st.altair_chart(alt.Chart(long, title=title).mark_line(point=len(frame) < 30).encode(
        alt.X(x, title=None, axis=alt.Axis(format="%H:%M:%S") if x == "time:T" else alt.Axis(tickMinStep=1)),
        alt.Y("value:Q", title=None), alt.Color("series:N", title=None),
        tooltip=[x.split(":")[0], "series", "value"]), width="stretch")


def turns(desk: Desk) -> None:
    st.subheader("Per turn")
    records = [r for r in turnlog.read(desk.session.ctx.home, TURNS) if r.get("turn") is not None]
    if not records:
        st.caption("no turns logged yet")
        return
    frame = pd.DataFrame(records)
    for column in ("tok_s", "ttft_s", "context_tokens"):
        if column not in frame:
            frame[column] = None
    frame = frame.rename(columns={"tok_s": "tokens per second", "ttft_s": "first token (s)",
                                  "context_tokens": "context used (tokens)"})
    last = frame.iloc[-1]
    st.caption(f"last turn {int(last['turn'])}: " + " · ".join(
        f"{name} {last[name]}" for name in ("tokens per second", "first token (s)", "context used (tokens)")
        if pd.notna(last[name])))
    for name in ("tokens per second", "first token (s)", "context used (tokens)"):
        chart(frame, [name], name, x="turn:Q")
