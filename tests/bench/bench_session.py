"""Our endless session vs LangChain's `create_agent` + `SqliteSaver`: per-turn overhead and storage.

    python tests/bench/bench_session.py [--turns 2000] [--peer-turns 1000] [--context-window 4096] [--seed 7]

Both sides get the same scripted chat model (tests/fakes.py's ScriptedChat, which takes
~no time) and the same deterministic ~600-character user messages and ~600-character
answers (seeded random words, some of them Japanese), so what is measured is the
framework: graph steps, checkpoints, SQLite.

- ours: `graph.session.Session` in a fresh data folder, default config except
  `agent.max_tool_rounds: 0` (no tools, like the peer), a 4096-token context window, so the
  `compact` node folds old turns into the summary every few turns, as in real use (the
  fake model writes the summaries too). A turn is `for _ in session.turn(text): pass`.
- peer: `langchain.agents.create_agent(model, tools=[], checkpointer=SqliteSaver(...))`
  on one thread id, `agent.invoke({"messages": [user message]}, config)` per turn. Its
  state keeps every message and every checkpoint, so its database grows quadratically
  (near 2 GB at 1,000 turns): it stops at min(--turns, --peer-turns).

Per-turn overhead is the wall time of a turn; the script prints the median of the first
and of the last 100 turns, database bytes per turn (agent.db with its -wal/-shm files,
final size / turns), the ratios ours/peer, and PASS/FAIL lines for our targets (median
under 15 ms, last-100 within 1.3x of first-100, under 20 KB/turn); it exits 0 either way.
The peer runs first, then ours, in the same process, in temporary folders deleted at the
end. Progress goes to stderr. The last line of stdout is one JSON object:
turns, ours_ms_first, ours_ms_last, ours_kb_per_turn, peer_turns, peer_ms_first,
peer_ms_last, peer_kb_per_turn.
"""

import argparse
import gc
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for fakes

from fakes import ScriptedChat, install  # noqa: E402

WINDOW = 100  # turns in the "first" and "last" medians
TARGET_MS, TARGET_GROWTH, TARGET_KB = 15.0, 1.3, 20.0

WORDS = ("the a of to and in that is for on with as it be at by this from or an are not was we "
         "can will if about which when one all would there their what so up out into more time "
         "agent model window summary session database turn message answer question local file "
         "folder python graph node state memory token prompt context checkpoint transcript "
         "please could you explain how why where should maybe later again yesterday tomorrow "
         "quickly carefully important example result error version release config backup "
         "schedule meeting report garden recipe travel weather budget invoice library bicycle "
         "mountain river coffee music chapter history science number letter morning evening").split()
JAPANESE = ("今日は 明日の 会議について 教えてください。 天気が いいですね。 東京 大阪 京都 "
            "ありがとうございます。 この ファイルを 保存して 要約を 作って 予定は 何時ですか？ "
            "日本語で 答えて 少し 長い 文章 データベース 設定 履歴 確認 お願いします。").split()


def text(rng: random.Random, size: int, japanese: bool) -> str:
    """About `size` characters of varied words; with `japanese`, Japanese phrases mixed in."""
    words, n = [], 0
    while n < size:
        word = rng.choice(JAPANESE) if japanese and rng.random() < 0.3 else rng.choice(WORDS)
        words.append(word)
        n += len(word) + 1
    sentence = " ".join(words)
    return sentence[0].upper() + sentence[1:] + "."


def conversation(turns: int, seed: int) -> tuple[list[str], list[str], str]:
    """The user messages, the answers (every 5th pair has Japanese) and the summary text."""
    rng = random.Random(seed)
    users = [text(rng, 600, i % 5 == 2) for i in range(turns)]
    answers = [text(rng, 600, i % 5 == 2) for i in range(turns)]
    return users, answers, text(rng, 800, True)


def db_bytes(path: Path) -> int:
    """The database with its -wal/-shm/-journal files."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def scalar(path: Path, sql: str):
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return ro.execute(sql).fetchone()[0]
    finally:
        ro.close()


def transcript_bytes(path: Path) -> int:
    """UTF-8 bytes of the content of every message in the transcript."""
    return scalar(path, "SELECT COALESCE(SUM(LENGTH(CAST(content AS BLOB))), 0) FROM transcript")


def median_ms(times: list[float], part: slice) -> float:
    return statistics.median(times[part]) * 1000 if times[part] else float("nan")


def progress(name: str, i: int, total: int, times: list[float], size: int, started: float) -> None:
    print(f"  [{name}] {i}/{total} turns, last-{WINDOW} median {median_ms(times, slice(-WINDOW, None)):.2f} ms, "
          f"db {size / 1e6:.1f} MB, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def run_peer(folder: Path, users: list[str], answers: list[str], every: int) -> dict:
    from langchain.agents import create_agent
    from langgraph.checkpoint.sqlite import SqliteSaver

    folder.mkdir(parents=True)
    path = folder / "peer.db"
    conn = sqlite3.connect(path, check_same_thread=False)
    model = ScriptedChat(replies=[])
    agent = create_agent(model, tools=[], checkpointer=SqliteSaver(conn))
    config = {"configurable": {"thread_id": "bench"}}
    times, cpu, started = [], [], time.perf_counter()
    try:
        for i, (user, answer) in enumerate(zip(users, answers), 1):
            model.replies = [answer]
            model.calls = []  # the fake keeps every prompt; don't let it grow with the run
            t0, c0 = time.perf_counter(), time.process_time()
            agent.invoke({"messages": [{"role": "user", "content": user}]}, config)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if i % every == 0:
                progress("peer", i, len(users), times, db_bytes(path), started)
        size = db_bytes(path)
        state = agent.get_state(config)
        assert len(state.values["messages"]) == 2 * len(users), "the peer lost messages"
    finally:
        conn.close()
    return {"times": times, "cpu": cpu, "bytes": size, "wall": time.perf_counter() - started}


def run_ours(folder: Path, users: list[str], answers: list[str], summary: str, every: int, context_window: int
             ) -> dict:
    import yaml

    from graph import store as store_module
    from graph.context import Context
    from graph.session import Session

    home = folder / "home"
    folder.mkdir(parents=True)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({"agent": {"max_tool_rounds": 0}, "evolution": {"every_turns": 0}}), encoding="utf-8")
    ctx = Context(home=str(home), config=str(config))
    model = ScriptedChat(replies=[])
    install(ctx, model, context_window=context_window)
    session = Session(ctx)
    times, cpu, folds, started = [], [], 0, time.perf_counter()
    try:
        for i, (user, answer) in enumerate(zip(users, answers), 1):
            model.replies = [answer, summary]  # the answer; the summary if `compact` folds this turn
            model.calls = []
            t0, c0 = time.perf_counter(), time.process_time()
            for kind, data in session.turn(user):
                folds += kind == "status" and str(data).startswith("folded")
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if i % every == 0:
                progress("ours", i, len(users), times, session.store.size_bytes(), started)
            if i == len(users) // 2:  # for the growth of the second half
                half = (session.store.size_bytes(), transcript_bytes(session.store.path))
        size = session.store.size_bytes()
        wal = sum(p.stat().st_size for p in home.glob("agent.db-wal"))
        live = len(session.messages())
        assert session.store.turns() == len(users), "turns missing from the transcript"
        transcript = transcript_bytes(session.store.path)
        checkpoints = scalar(session.store.path, "SELECT COUNT(*) FROM checkpoints")
    finally:
        session.saver.conn.close()
        session.store.conn.close()
        store_module._stores.pop(str(home.resolve()), None)
    return {"times": times, "cpu": cpu, "bytes": size, "wall": time.perf_counter() - started, "folds": folds,
            "wal": wal, "half": half, "live": live, "transcript": transcript, "checkpoints": checkpoints}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=2000, help="turns of our session (default 2000)")
    ap.add_argument("--peer-turns", type=int, default=1000,
                    help="most turns of the peer, whose database grows quadratically (default 1000; 0 skips it)")
    ap.add_argument("--context-window", type=int, default=4096,
                    help="our model's context window in tokens: compaction every few turns at 4096 (default)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    peer_turns = max(0, min(args.turns, args.peer_turns))
    load = os.getloadavg()
    users, answers, summary = conversation(args.turns, args.seed)
    chars = statistics.mean(len(t) for t in users + answers)
    every = 100 if args.turns <= 2000 else 500
    folder = Path(tempfile.mkdtemp(prefix="bench_session_"))
    try:
        peer = None
        if peer_turns:
            print(f"peer: {peer_turns} turns…", file=sys.stderr, flush=True)
            peer = run_peer(folder / "peer", users[:peer_turns], answers[:peer_turns], every)
            shutil.rmtree(folder / "peer", ignore_errors=True)
            gc.collect()
        print(f"ours: {args.turns} turns…", file=sys.stderr, flush=True)
        ours = run_ours(folder / "ours", users, answers, summary, every, args.context_window)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    first, last = slice(0, WINDOW), slice(-WINDOW, None)
    o_first, o_last = median_ms(ours["times"], first), median_ms(ours["times"], last)
    oc_first, oc_last = median_ms(ours["cpu"], first), median_ms(ours["cpu"], last)
    o_kb = ours["bytes"] / args.turns / 1024
    print(f"session benchmark: {args.turns} turns, user messages and answers of ~{chars:.0f} characters "
          f"(every 5th pair with Japanese), scripted model, context window {args.context_window} tokens")
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at the end "
          "(other work on the machine inflates wall times; CPU times count this process only)")
    print(f"ours : per-turn overhead median first-{WINDOW} {o_first:6.2f} ms, last-{WINDOW} {o_last:6.2f} ms "
          f"(CPU {oc_first:.2f} / {oc_last:.2f} ms), all {median_ms(ours['times'], slice(None)):.2f} ms; "
          f"{args.turns} turns in {ours['wall']:.1f} s")
    print(f"       db {ours['bytes'] / 1e6:.1f} MB = {o_kb:.2f} KB/turn; {ours['folds']} compactions, "
          f"{ours['live']} messages in the live window at the end, {ours['checkpoints']} checkpoints kept")
    print(f"       db {ours['bytes'] / 1e6:.1f} MB (of which -wal {ours['wal'] / 1e6:.1f} MB) vs transcript content "
          f"{ours['transcript'] / 1e6:.1f} MB: db / transcript = {ours['bytes'] / max(ours['transcript'], 1):.2f}")
    grew, wrote = ours["bytes"] - ours["half"][0], ours["transcript"] - ours["half"][1]
    print(f"       second half of the run: db +{grew / 1e6:.1f} MB for +{wrote / 1e6:.1f} MB of transcript "
          f"content = {grew / max(wrote, 1):.2f}x (the rest is fixed: -wal file, checkpoints, schema)")
    result = {"turns": args.turns, "ours_ms_first": round(o_first, 3), "ours_ms_last": round(o_last, 3),
              "ours_kb_per_turn": round(o_kb, 3), "peer_turns": peer_turns,
              "peer_ms_first": None, "peer_ms_last": None, "peer_kb_per_turn": None}
    if peer:
        p_first, p_last = median_ms(peer["times"], first), median_ms(peer["times"], last)
        p_kb = peer["bytes"] / peer_turns / 1024
        same = median_ms(ours["times"], slice(max(0, peer_turns - WINDOW), peer_turns))
        print(f"peer : per-turn overhead median first-{WINDOW} {p_first:6.2f} ms, last-{WINDOW} {p_last:6.2f} ms "
              f"(CPU {median_ms(peer['cpu'], first):.2f} / {median_ms(peer['cpu'], last):.2f} ms); "
              f"{peer_turns} turns in {peer['wall']:.1f} s")
        print(f"       db {peer['bytes'] / 1e6:.1f} MB = {p_kb:.2f} KB/turn")
        if peer_turns < args.turns:
            print(f"       the peer stopped at {peer_turns} turns (of {args.turns}): it keeps every message in "
                  f"every checkpoint, so its database was {peer['bytes'] / 1e9:.2f} GB by then and grows "
                  "quadratically")
        print(f"ratio ours/peer: first-{WINDOW} {o_first / p_first:.2f}x, last-{WINDOW} {o_last / p_last:.2f}x "
              f"(ours at turns {max(0, peer_turns - WINDOW) + 1}-{peer_turns}: {same:.2f} ms = "
              f"{same / p_last:.2f}x), storage per turn {o_kb / p_kb:.4f}x")
        result.update(peer_ms_first=round(p_first, 3), peer_ms_last=round(p_last, 3), peer_kb_per_turn=round(p_kb, 3))
    else:
        print("peer : skipped (--peer-turns 0)")
    print(f"{verdict(o_first < TARGET_MS and o_last < TARGET_MS)} per-turn overhead under {TARGET_MS:g} ms: "
          f"first-{WINDOW} {o_first:.2f} ms, last-{WINDOW} {o_last:.2f} ms")
    print(f"{verdict(o_last <= TARGET_GROWTH * o_first)} no growth: last-{WINDOW} / first-{WINDOW} = "
          f"{o_last / o_first:.2f} (target <= {TARGET_GROWTH:g}; CPU time {oc_last / oc_first:.2f})")
    print(f"{verdict(o_kb < TARGET_KB)} storage under {TARGET_KB:g} KB/turn: {o_kb:.2f} KB/turn")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
