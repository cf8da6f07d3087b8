"""The web UI's learning page: the reward of every turn with its moving average, the system
prompt's versions on a timeline (serving, on probation, rolled back, and why) with a diff
between any two and a rollback button, the learned answering policy, and the tuning data as a
table with SFT/KTO/DPO export buttons.

Owns: how those look in the browser. Does not own: any of the data or the changes (graph/actions).
Text the agent or the user wrote (a prompt's rationale, examples) is shown as plain text.
"""

from __future__ import annotations

import json
import time

import altair as alt
import pandas as pd
import streamlit as st

from graph.actions import Problem, examples, learning, prompt, rewards
from graph.web.ui.live import Desk

REWARD_TURNS = 500  # turns on the reward chart
AVERAGE = 10  # turns in the moving average
EXAMPLE_ROWS = 500


def page(desk: Desk) -> None:
    ctx, store = desk.session.ctx, desk.session.store
    st.header("Learning")
    st.caption(f"learning is {learning.state(ctx, store)}")
    reward_chart(store)
    prompt_versions(desk)
    policy(store)
    tuning_data(store)


def reward_chart(store) -> None:
    st.subheader("Reward per turn")
    items = sorted(rewards.report(store, REWARD_TURNS)["rewards"], key=lambda item: item.turn)
    if not items:
        st.caption("no rewards yet: each answer gets one when your next action (or a rating) is known")
        return
    frame = pd.DataFrame({"turn": [i.turn for i in items], "reward": [i.reward for i in items],
                          "settled": ["settled" if i.settled is not None else "waiting" for i in items]})
    frame["moving average"] = frame["reward"].rolling(AVERAGE, min_periods=1).mean()
    x = alt.X("turn:Q", axis=alt.Axis(tickMinStep=1))
    points = alt.Chart(frame).mark_circle(size=60).encode(
        x=x, y=alt.Y("reward:Q", scale=alt.Scale(domain=[-1, 1])), color=alt.Color("settled:N", title=None),
        tooltip=["turn", "reward", "settled"])
    line = alt.Chart(frame).mark_line(color="#888").encode(x=x, y=alt.Y("moving average:Q"))
    st.altair_chart(points + line, width="stretch")
    last = frame.iloc[-1]
    st.caption(f"latest: turn {int(last['turn'])} reward {last['reward']:+.2f} · moving average of "
               f"{AVERAGE} turns {last['moving average']:+.2f} · {len(frame)} turns shown")


def prompt_versions(desk: Desk) -> None:
    ctx, store = desk.session.ctx, desk.session.store
    st.subheader("System prompt versions")
    serving = prompt.current(ctx)
    versions = prompt.history(store)
    frame = pd.DataFrame([{"version": v.id, "made": pd.to_datetime(v.created, unit="s"), "author": v.author,
                           "status": "serving" if v.id == serving.id else v.status} for v in versions])
    st.altair_chart(alt.Chart(frame).mark_circle(size=160).encode(
        alt.X("made:T", title=None), alt.Y("version:O", sort="descending"), alt.Color("status:N"),
        tooltip=["version", "author", "status", "made"]), width="stretch")
    for v in reversed(versions):
        state = "serving" if v.id == serving.id else v.status.replace("_", " ")
        decided = f" · {v.outcome}" if v.outcome else ""
        st.text(f"version {v.id} · {state} · by {v.author} · {_when(v.created)}{decided} — {v.rationale}")
    with st.expander(f"version {serving.id}'s text (serving)"):
        st.text(serving.text)
    numbers = [v.id for v in versions]
    if len(numbers) > 1:
        left, right = st.columns(2)
        base = left.selectbox("diff from version", numbers, index=numbers.index(serving.parent or numbers[0]))
        other = right.selectbox("to version", numbers, index=numbers.index(serving.id))
        st.code(prompt.diff(prompt.diff_pair(ctx, base, other)) or "(the same text)", language="diff")
    st.button(f"Roll back version {serving.id}", disabled=serving.parent is None, on_click=_rollback, args=(desk,),
              help="serve its parent again; the rollback is written to the learning log")


def _rollback(desk: Desk) -> None:
    try:
        undone, back = prompt.rollback(desk.session.ctx, "rolled back in the web UI")
    except Problem as exc:
        st.toast(str(exc), icon="⚠️")
        return
    st.toast(f"version {undone.id} rolled back: version {back.id} serves again")


def policy(store) -> None:
    st.subheader("Learned answering policy")
    learned = rewards.policy(store)
    if not learned["arms"]:
        st.caption("nothing learned yet (it learns from settled rewards; learning.policy)")
        return
    rows = [{**row, "best": learned["best"].get(row["bucket"], {}).get(row["factor"]) == row["arm"]}
            for row in learned["arms"]]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def tuning_data(store) -> None:
    st.subheader("Tuning data")
    listed = examples.listing(store, last=EXAMPLE_ROWS)
    counts = examples.counts(store)
    st.caption(", ".join(f"{k}: {v}" for k, v in counts.items()) or "no examples yet")
    if listed:
        st.dataframe(pd.DataFrame([{"id": e.id, "label": e.label, "split": e.split, "source": e.source,
                                    "reward": e.reward, "turn": e.turn, "question": e.question, "answer": e.answer,
                                    "why": e.why} for e in listed]), hide_index=True)
    for column, fmt in zip(st.columns(6), ("sft", "kto", "dpo")):
        records = list(examples.export(store, fmt))
        column.download_button(f"Export {fmt.upper()} ({len(records)})", file_name=f"tuning-{fmt}.jsonl",
                               data="".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                               mime="application/jsonl", disabled=not records, on_click="ignore")


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))
