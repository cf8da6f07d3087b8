"""The web UI's chat page: the whole conversation (paged, newest last), the turn in progress as
it streams (reasoning dimmed, then collapsed to "thought for X s"; tool calls and their results;
buttons for a tool call waiting for approval), the message box, and 👍/👎 and 1-5 stars under
every answer, which rate it as /good, /bad and /rate do in the REPL (the same reward).

Everything the model or a tool wrote is shown as Markdown with raw HTML escaped (Streamlit's
default; never unsafe_allow_html) or as plain code text, so a `<script>` or `<img onerror>`
in an answer is text, never run. Owns: how a turn looks in the browser. Does not own: running
the turn (live.py, session.py), the history or the ratings (graph/actions).
"""

from __future__ import annotations

import json
import re

import streamlit as st

from graph.actions import Problem, history, rewards
from graph.web.ui.live import Block, Desk, LiveTurn

PAGE_TURNS = 20  # turns per page of history
POLL_S = 0.25  # how often the turn in progress is redrawn
RESULT_CHARS = 1500  # a tool result is shown up to this many characters
UNTRUSTED = re.compile(r'<untrusted source="([^"]*)">\n(.*)\n</untrusted>', re.DOTALL)


def page(desk: Desk) -> None:
    for notice in desk.notices:
        st.warning(notice, icon="⚠️")
    store, live = desk.session.store, desk.live()
    shown = st.session_state.setdefault("turns_shown", PAGE_TURNS)
    data = history.page(store, None, shown)
    if data["before"] is not None:
        st.button("show earlier turns", on_click=_more, icon="⬆️")
    if not data["messages"]:
        st.caption("No messages yet: write one below.")
    rated = {item.turn: item for item in rewards.report(store, shown)["rewards"]}
    turn_rows: dict[int, list[dict]] = {}
    for row in data["messages"]:
        turn_rows.setdefault(row["turn"], []).append(row)
    for turn, rows in turn_rows.items():
        if live is None or turn != live.number:  # the turn in progress is drawn from its events
            draw_turn(desk, turn, rows, rated.get(turn))
    if live is not None:
        live_area(desk)
    elif desk.turn is not None:  # the last turn failed: why (its message is kept in the history)
        for text in [data for kind, data, _ in desk.turn.events if kind == "error"]:
            st.error(text)
    text = st.chat_input("Message the agent", disabled=live is not None and not live.answered)
    if text and text.strip():
        with st.spinner("finishing the last turn's upkeep…"):
            desk.send(text.strip())
        st.rerun()


def _more() -> None:
    st.session_state["turns_shown"] += PAGE_TURNS


def draw_turn(desk: Desk, turn: int, rows: list[dict], reward) -> None:
    """One turn from the transcript: the user's message, then the agent's steps and answer."""
    box = None
    for row in rows:
        if row["role"] == "user":
            with st.chat_message("user"):
                st.markdown(row["content"])
            box = None
            continue
        box = box or st.chat_message("assistant")
        with box:
            draw_row(row)
    answers = [r for r in rows if r["role"] == "assistant" and not r["tool_calls"]]
    if answers and reward is not None:
        with box or st.chat_message("assistant"):
            rating(desk, turn, reward)


def draw_row(row: dict) -> None:
    meta = row["meta"]
    if row["role"] == "tool":
        st.code(tool_text(row["content"], row["name"]), language=None, wrap_lines=True)
        return
    if row["reasoning"]:
        seconds = meta.get("thought_s")
        with st.expander(f"thought for {seconds} s" if seconds is not None else "thought"):
            st.caption(row["reasoning"])
    for call in row["tool_calls"]:
        st.code(call_text(call), language=None, wrap_lines=True)
    if row["content"]:
        st.markdown(row["content"])
    if meta.get("interrupted"):
        st.caption(f"[{meta['interrupted']}]")
    elif meta.get("backend") and not row["tool_calls"]:
        speed = f" · {meta['tok_s']} tok/s" if meta.get("tok_s") else ""
        st.caption(f"{meta['backend']} · first token {meta.get('ttft_s')} s{speed}")


def call_text(call: dict) -> str:
    return f"→ {call['name']}({json.dumps(call['args'], ensure_ascii=False)})"


def tool_text(content: str, name: str | None) -> str:
    """A tool result as the user should see it: without the untrusted-data wrapper, clipped."""
    found = UNTRUSTED.fullmatch(content)
    text = f"[{found.group(1)}] {found.group(2)}" if found else content
    if len(text) > RESULT_CHARS:
        text = text[:RESULT_CHARS] + f"… ({len(text) - RESULT_CHARS} more characters)"
    return f"← {name or 'tool'}: {text}"


def rating(desk: Desk, turn: int, reward) -> None:
    """👍/👎 and 1-5 stars for turn `turn`'s answer, and the reward they gave."""
    parts = reward.components
    thumbs = 1 if "good" in parts else 0 if "bad" in parts else None
    stars = round(parts["rating"] * 2 + 2) if "rating" in parts else None  # -1…+1 → index 0…4
    left, right, note = st.columns([1, 2, 6], vertical_alignment="center")
    with left:
        st.feedback("thumbs", key=f"thumbs-{turn}", default=thumbs, on_change=_rate, args=(desk, turn, "thumbs"))
    with right:
        st.feedback("stars", key=f"stars-{turn}", default=stars, on_change=_rate, args=(desk, turn, "stars"))
    with note:
        given = ", ".join(f"{k} {v:+.2f}" for k, v in parts.items()) or "no signal yet"
        st.caption(f"turn {turn} · reward {reward.reward:+.2f} ({given})")


def _rate(desk: Desk, turn: int, widget: str) -> None:
    value = st.session_state.get(f"{widget}-{turn}")
    if value is None:
        return  # a rating taken back: the last explicit one stays (as in the REPL)
    try:
        if widget == "thumbs":
            rewards.rate(desk.session.ctx, "good" if value == 1 else "bad", turn=turn)
        else:
            rewards.rate(desk.session.ctx, "rating", value + 1, turn=turn)
    except Problem as exc:
        st.toast(str(exc), icon="⚠️")


@st.fragment(run_every=POLL_S)
def live_area(desk: Desk) -> None:
    """The turn in progress, redrawn every POLL_S; the whole page is redrawn once it is over."""
    live = desk.turn
    if live is None or live.finished:
        st.rerun()
    with st.chat_message("user"):
        st.markdown(live.text)
    with st.chat_message("assistant"):
        blocks = live.blocks()
        for i, block in enumerate(blocks):
            after = blocks[i + 1] if i + 1 < len(blocks) else None
            draw_block(block, after, streaming=after is None and not live.answered)
        if live.question is not None:
            approval(live)
        elif not live.answered:
            st.button("Stop", on_click=live.stop, icon="⏹️", key="stop")
        else:
            st.caption("learning from this turn…")


def draw_block(block: Block, after: Block | None, streaming: bool) -> None:
    if block.kind == "thought":
        if streaming:
            st.caption("thinking… " + block.text)
        else:
            seconds = (after.start if after else block.end) - block.start
            with st.expander(f"thought for {seconds:.1f} s"):
                st.caption(block.text)
    elif block.kind == "token":
        st.markdown(block.text + (" ▌" if streaming else ""))
    elif block.kind == "tool_call":
        st.code(call_text(block.data), language=None, wrap_lines=True)
    elif block.kind == "tool_result":
        st.code(tool_text(block.data.text, block.data.name), language=None, wrap_lines=True)
    elif block.kind == "notice":
        st.warning(block.text, icon="⚠️")
    elif block.kind == "error":
        st.error(block.text)
    else:
        st.caption(block.text)


def approval(live: LiveTurn) -> None:
    """The tool call waiting for the user: what it would run, and yes / no / always."""
    request = live.question
    args = request["args"]
    shown = args["command"] if isinstance(args.get("command"), str) else json.dumps(args, ensure_ascii=False)
    st.warning(f"{request['tool']} wants to run this. Allow it?", icon="❓")
    st.code(shown, language=None, wrap_lines=True)
    if request.get("reason"):
        st.caption(request["reason"])
    choices = [("yes", "Yes"), ("no", "No")] + ([("always", "Always")] if request.get("always") else [])
    key = len(live.events)
    for column, (choice, label) in zip(st.columns(len(choices) + 3), choices):
        column.button(label, key=f"approve-{key}-{choice}", on_click=live.answer, args=(choice,),
                      type="primary" if choice == "yes" else "secondary")
