"""Our endless session vs LangChain's `create_agent` + `SqliteSaver`, without and with
`SummarizationMiddleware`: per-turn overhead, its parts, the background work, and storage.

    python tests/bench/bench_session.py [--turns 2000] [--peer-turns 1000] [--context-window 4096] [--seed 7]
                                        [--profile]

All get the same scripted chat model (tests/fakes.py's ScriptedChat, which takes ~no time)
and the same deterministic ~600-character user messages and ~600-character answers (seeded
random words, some of them Japanese), so what is measured is the framework: graph steps,
checkpoints, SQLite, long-term memory.

- ours: `graph.session.Session` in a fresh data folder, default config except
  `agent.max_tool_rounds: 0` (no tools, like the peers), a 4096-token context window, so the
  `compact` node folds old turns into the summary every few turns, as in real use (the
  fake model writes the summaries too). One memory is made before the first turn, so that
  every turn searches long-term memory (recall, with the query embedding), as a user's would
  once there is anything to recall. A turn is `for _ in session.turn(text): pass`, timed in
  two parts: until its "done" event (the answer is in: what the user waits for) and the
  upkeep after it (reflect, reward, self_rewrite, compact, handing the turns folded out of
  the window to the memory's backlog), which the REPL runs while the user reads and types;
  here it runs at once, before the next turn. Then comes the user's pause: the backlog's
  thread indexes the folded turns (graph/backlog.py, with its QUIET shortened to 0: it
  starts at once), and the next turn starts when it is done. The pause is not part of the
  turn's times; its wall and CPU time are reported apart (per turn, first and last 100, and
  the growth of turn + pause CPU), so the work moved off the path is not hidden. What is
  still waiting at the end is indexed by `drain()`.
- peer: `langchain.agents.create_agent(model, tools=[], checkpointer=SqliteSaver(...))`
  on one thread id, `agent.invoke({"messages": [user message]}, config)` per turn. Its
  state keeps every message and every checkpoint, so its database grows quadratically
  (near 2 GB at 1,000 turns).
- summarizing peer: the same plus `SummarizationMiddleware` (langchain 1.5: trigger at
  `session.compact_at` of the context window in tokens, keep the last 3 turns = 6 messages,
  like ours; the summary is the same fixed text, written by a function at no cost), what a
  LangChain user would build for a bounded window. It keeps every checkpoint.
  Both peers stop at min(--turns, --peer-turns).

Per-turn overhead is the wall time of a whole turn, upkeep included (and its CPU time:
process_time, all threads, the background thread's included); the script prints the median
of the first and of the last 100 turns, the wait until the answer with and without the
model and the query embedding of recall (the model: the time spent getting the scripted
model's next chunk through LangChain's `stream`, what a real model's generation replaces;
reported apart, with the parts of a turn: each graph node, recall, the embedding, the
model, the rest; with --profile, cProfile's functions whose time per turn grew most between
the first and the last 100 turns of ours, in the turn's thread: profiling slows those turns,
so their timings are not comparable with a run without it), database bytes per turn
(agent.db with its -wal/-shm files, final size / turns), the ratios ours/peers, the
machine's own speed during the first and the last 100 turns (a fixed piece of Python work,
timed after every 5th of those turns, outside them, in a fresh process: the host's speed for
work like ours, which varies by 20 % within minutes on these shared machines; and the same
work in this process: whether this process itself slowed down) with the growth corrected for it, and PASS/FAIL
lines for our targets on the raw figures (the wait until the answer under 15 ms apart from
the model and the query embedding, whole turns' last-100 within 1.3x of first-100 in wall
and CPU time, under 20 KB/turn); it exits 0
either way. Whole turns alternate between folding (and indexing) and not, so their growth
is judged on the mean of each 100 turns; the medians are printed too. The peers
run first, then ours, in the same process, in temporary folders deleted at the end. Progress
goes to stderr. The last line of stdout is one JSON object: turns, ours_ms_first,
ours_ms_last, ours_cpu_ratio, ours_mean_ratio, ours_mean_cpu_ratio, ours_wait_ms_first,
ours_wait_ms_last, ours_net_ms_first, ours_net_ms_last, ours_kb_per_turn,
peer_turns, peer_ms_first, peer_ms_last, peer_kb_per_turn, summarizing_ms_first,
summarizing_ms_last, summarizing_kb_per_turn, indexed_in_background, indexed_at_end,
index_per_turn_ms, pause_cpu_ms_first, pause_cpu_ms_last, total_cpu_ratio, speed_drift,
process_drift.
"""

import argparse
import cProfile
import collections
import gc
import threading
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for fakes

from fakes import ScriptedChat, install  # noqa: E402

WINDOW = 100  # turns in the "first" and "last" medians
# reference(): a fixed piece of Python work (objects, sorting, JSON: what a turn's own work is made of)
WORK = '''
import json, random, time
def work():
    rng = random.Random(1)
    rows = [{"id": i, "text": "w%d" % rng.randrange(10 ** 6), "v": rng.random()} for i in range(8000)]
    rows.sort(key=lambda r: r["text"])
    json.loads(json.dumps(rows[:2000]))
def timed():
    times = []
    for _ in range(3):
        start = time.thread_time()  # CPU time: waiting for a core (a busy machine) is not in it
        work()
        times.append(time.thread_time() - start)
    return sorted(times)[1]
'''
SAMPLE_EVERY = 5  # reference() after every 5th turn of the first and the last 100
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


def mean_ms(times: list[float], part: slice) -> float:
    return statistics.fmean(times[part]) * 1000 if times[part] else float("nan")


def progress(name: str, i: int, total: int, times: list[float], size: int, started: float) -> None:
    print(f"  [{name}] {i}/{total} turns, last-{WINDOW} median {median_ms(times, slice(-WINDOW, None)):.2f} ms, "
          f"db {size / 1e6:.1f} MB, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)


def run_peer(folder: Path, users: list[str], answers: list[str], summary: str, every: int, name: str,
             window: int | None = None) -> dict:
    """The peer; with `window` (tokens), the summarizing peer."""
    from langchain.agents import create_agent
    from langchain.agents.middleware import SummarizationMiddleware
    from langgraph.checkpoint.sqlite import SqliteSaver

    from graph.config import SessionSettings

    folder.mkdir(parents=True)
    path = folder / "peer.db"
    conn = sqlite3.connect(path, check_same_thread=False)
    model = ScriptedChat(replies=[])
    keep = SessionSettings().keep_turns
    middleware = [SummarizationMiddleware(model, trigger=("tokens", int(SessionSettings().compact_at * window)),
                                          keep=("messages", 2 * keep), summarizer=lambda messages: summary)
                  ] if window else []
    agent = create_agent(model, tools=[], checkpointer=SqliteSaver(conn), middleware=middleware)
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
                progress(name, i, len(users), times, db_bytes(path), started)
        size = db_bytes(path)
        live = len(agent.get_state(config).values["messages"])
        if window:
            assert live <= 2 * keep + 4, f"the summarizing peer kept {live} messages"
        else:
            assert live == 2 * len(users), "the peer lost messages"
    finally:
        conn.close()
    return {"times": times, "cpu": cpu, "bytes": size, "wall": time.perf_counter() - started, "live": live}


def reference() -> tuple[float, float]:
    """CPU seconds of WORK (the median of 3) in a fresh Python process (the host's speed for such
    work at that moment: nothing of this process's state is in it), and in this process."""
    fresh = float(subprocess.run([sys.executable, "-c", WORK + "print(timed())"], capture_output=True, text=True,
                                 check=True).stdout)
    scope: dict = {}
    exec(WORK, scope)
    return fresh, scope["timed"]()


def instrument(builder) -> tuple[dict, dict]:
    """Time each graph node, recall, the query embedding, the indexing of folded turns (per turn,
    in `parts`) and that indexing again per thread (in `background`: per thread name, [turns, seconds])."""
    from graph.memory import memories as memory
    from graph.memory import vectors

    parts: dict[str, float] = collections.defaultdict(float)
    background: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])

    def timed(name, fn, into=parts):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                into[name] += time.perf_counter() - start
        return wrapper

    for name, spec in builder.nodes.items():  # LangGraph passes `runtime` (and `config`) by name
        original = spec.runnable.func
        spec.runnable.func = lambda state, _fn=original, _n=name, **kw: timed(_n, _fn)(state, **kw)
    vectors.query_vector = timed("query embedding", vectors.query_vector)
    memory.Memories.recall = timed("recall", memory.Memories.recall)  # a turn's memories and past turns
    index_turns = memory.Memories.index_turns

    def indexing(self, turns):
        start = time.perf_counter()
        index_turns(self, turns)
        entry = background[threading.current_thread().name]
        entry[0] += len(turns)
        entry[1] += time.perf_counter() - start
        parts["indexing"] += time.perf_counter() - start
    memory.Memories.index_turns = indexing
    stream = ScriptedChat.stream

    def model_stream(self, *args, **kwargs):  # the model itself: the time spent getting its next chunk
        chunks = stream(self, *args, **kwargs)
        try:
            while True:
                start = time.perf_counter()
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
                finally:
                    parts["model"] += time.perf_counter() - start
                yield chunk
        finally:
            chunks.close()
    ScriptedChat.stream = model_stream
    return parts, background


def run_ours(folder: Path, users: list[str], answers: list[str], summary: str, every: int, context_window: int,
             profile: bool = False) -> dict:
    import yaml

    from graph.memory import backlog as backlog_module
    from graph.builder import builder
    from graph.context import Context
    from graph.memory.memories import memories_of
    from graph.session import Session

    home = folder / "home"
    folder.mkdir(parents=True)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({"agent": {"max_tool_rounds": 0}, "evolution": {"every_turns": 0}}), encoding="utf-8")
    ctx = Context(home=str(home), config=str(config))
    model = ScriptedChat(replies=[])
    install(ctx, model, context_window=context_window)
    parts, background = instrument(builder)
    session = Session(ctx)
    memories_of(ctx).add("The user's bicycle is a blue Brompton", "fact")  # so every turn recalls, the first too
    backlog = memories_of(ctx).backlog
    backlog_module.QUIET = 0.0  # the user's pause is simulated below: index at once
    times, waits, cpu, split, answering, folds, started = [], [], [], [], [], 0, time.perf_counter()
    pauses = []  # (wall, CPU) seconds of the backlog's indexing after each turn
    speed = []  # reference() after every SAMPLE_EVERY-th turn of the first and the last 100
    profiles = (cProfile.Profile(), cProfile.Profile()) if profile else None
    try:
        for i, (user, answer) in enumerate(zip(users, answers), 1):
            model.replies = [answer, summary]  # the answer; the summary if `compact` folds this turn
            model.calls = []
            before = dict(parts)
            profiler = profiles and (profiles[0] if i <= WINDOW else profiles[1] if i > len(users) - WINDOW else None)
            if profiler:
                profiler.enable()
            t0, c0 = time.perf_counter(), time.process_time()
            events = session.turn(user)
            for kind, data in events:
                if kind == "done":  # the answer is in: what the user waited for
                    break
            answered = time.perf_counter()
            answering.append({k: v - before.get(k, 0.0) for k, v in parts.items()})
            for kind, data in events:  # the upkeep after it (the REPL runs it while the user types)
                folds += kind == "status" and str(data).startswith("folded")
            times.append(time.perf_counter() - t0)
            waits.append(answered - t0)
            cpu.append(time.process_time() - c0)
            if profiler:
                profiler.disable()
            split.append({k: v - before.get(k, 0.0) for k, v in parts.items()})
            t1, c1 = time.perf_counter(), time.process_time()
            while backlog.pending():  # the user's pause: the backlog's thread indexes the folded turns
                time.sleep(0.002)
            pauses.append((time.perf_counter() - t1, time.process_time() - c1))
            if (i <= WINDOW or i > len(users) - WINDOW) and i % SAMPLE_EVERY == 0:
                speed.append(reference())
            if i % every == 0:
                progress("ours", i, len(users), times, session.store.size_bytes(), started)
            if i == len(users) // 2:  # for the growth of the second half
                half = (session.store.size_bytes(), transcript_bytes(session.store.path))
        during = {name: tuple(entry) for name, entry in background.items()}
        waiting, t0 = backlog.pending(), time.perf_counter()
        backlog.drain()
        drained = (waiting, time.perf_counter() - t0)
        backlog.stop()
        assert backlog.pending() == 0 and session.store.get_meta("turns_indexed"), "folded turns were not indexed"
        size = session.store.size_bytes()
        index_mb = sum(p.stat().st_size for p in (home / "memory").rglob("*") if p.is_file()) / 1e6
        wal = sum(p.stat().st_size for p in home.glob("agent.db-wal"))
        live = len(session.messages())
        assert session.store.turns() == len(users), "turns missing from the transcript"
        transcript = transcript_bytes(session.store.path)
        checkpoints = scalar(session.store.path, "SELECT COUNT(*) FROM checkpoints")
    finally:
        session.saver.conn.close()
        session.ctx.services.close()
    return {"times": times, "waits": waits, "cpu": cpu, "split": split, "answering": answering, "bytes": size,
            "pauses": pauses, "speed": speed,
            "wall": time.perf_counter() - started,
            "folds": folds, "wal": wal, "half": half, "live": live, "transcript": transcript,
            "checkpoints": checkpoints, "during": during, "drained": drained, "index_mb": index_mb,
            "profiles": profiles}


def growth_lines(profiles: tuple, top: int = 25) -> list[str]:
    """The functions whose cumulative time per turn grew most from the first to the last 100 turns."""
    import pstats

    first, last = (pstats.Stats(p).stats for p in profiles)
    grown = []
    for key, (_, calls, _, cumulative, _) in last.items():
        was = first.get(key, (0, 0, 0, 0.0, None))
        grown.append((cumulative - was[3], key, was[3], cumulative, was[1], calls))
    grown.sort(reverse=True)
    lines = [f"       cProfile, the turn's thread: cumulative ms per turn, first-{WINDOW} -> last-{WINDOW} (calls), "
             f"the {top} that grew most:"]
    for _, (file, line, name), was, now, was_calls, calls in grown[:top]:
        where = f"{Path(file).name}:{line}" if line else file
        lines.append(f"         {was * 1000 / WINDOW:8.2f} -> {now * 1000 / WINDOW:8.2f}  ({was_calls} -> {calls})  "
                     f"{name} {where}")
    return lines


def parts_table(ours: dict, first: slice, last: slice) -> list[str]:
    """Median ms of each part of a turn, first and last 100 turns."""
    def med(key, part, of="split"):
        return statistics.median(turn.get(key, 0.0) for turn in ours[of][part]) * 1000

    def rest(times, nodes):
        gone = [t - sum(p.get(n, 0.0) for n in nodes) for t, p in zip(times, ours["split"])]
        return f"{statistics.median(gone[first]) * 1000:7.2f} / {statistics.median(gone[last]) * 1000:7.2f}"

    upkeep = [t - w for t, w in zip(ours["times"], ours["waits"])]
    after = ("reflect", "reward", "self_rewrite", "compact", "indexing")
    lines = [f"       parts of a turn, median ms first-{WINDOW} / last-{WINDOW} (recall and the model are inside reason, "
             "the query embedding inside recall):",
             "         until the answer:"]
    lines += [f"         {name:<16} {med(name, first, 'answering'):7.2f} / {med(name, last, 'answering'):7.2f}"
              for name in ("reason", "recall", "query embedding", "model")]
    lines.append(f"         {'outside nodes':<16} {rest(ours['waits'], ('reason',))}   "
                 "(graph, checkpoints, transcript, lock, recovery check)")
    lines.append(f"         upkeep after the answer (off the user's path): {median_ms(upkeep, first):.2f} / "
                 f"{median_ms(upkeep, last):.2f}")
    lines += [f"         {name:<16} {med(name, first):7.2f} / {med(name, last):7.2f}" for name in after]
    lines.append(f"         {'outside nodes':<16} {rest(upkeep, after)}   (graph, checkpoints, lock, pruning)")
    return lines


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def peer_lines(label: str, peer: dict, ours: dict, turns: int, total: int, first: slice, last: slice) -> list[str]:
    p_first, p_last = median_ms(peer["times"], first), median_ms(peer["times"], last)
    kb = peer["bytes"] / turns / 1024
    same = median_ms(ours["times"], slice(max(0, turns - WINDOW), turns))
    lines = [f"{label}: per-turn overhead median first-{WINDOW} {p_first:6.2f} ms, last-{WINDOW} {p_last:6.2f} ms "
             f"(CPU {median_ms(peer['cpu'], first):.2f} / {median_ms(peer['cpu'], last):.2f} ms); "
             f"{turns} turns in {peer['wall']:.1f} s",
             f"       db {peer['bytes'] / 1e6:.1f} MB = {kb:.2f} KB/turn; {peer['live']} messages in its state at the end"]
    if turns < total:
        lines.append(f"       it stopped at {turns} turns (of {total}; --peer-turns)")
    lines.append(f"       ratio ours/{label.strip()}: first-{WINDOW} {median_ms(ours['times'], first) / p_first:.2f}x, "
                 f"last-{WINDOW} {median_ms(ours['times'], last) / p_last:.2f}x (ours at turns "
                 f"{max(0, turns - WINDOW) + 1}-{turns}: {same:.2f} ms = {same / p_last:.2f}x), storage per turn "
                 f"{ours['bytes'] / total / 1024 / kb:.4f}x")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=2000, help="turns of our session (default 2000)")
    ap.add_argument("--peer-turns", type=int, default=1000,
                    help="most turns of each peer; the plain one's database grows quadratically (default 1000; "
                         "0 skips them)")
    ap.add_argument("--context-window", type=int, default=4096,
                    help="our model's context window in tokens: compaction every few turns at 4096 (default)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", action="store_true",
                    help="profile our first and last 100 turns and print what grew (slows those turns)")
    args = ap.parse_args()
    peer_turns = max(0, min(args.turns, args.peer_turns))
    load = os.getloadavg()
    users, answers, summary = conversation(args.turns, args.seed)
    chars = statistics.mean(len(t) for t in users + answers)
    every = 100 if args.turns <= 2000 else 500
    folder = Path(tempfile.mkdtemp(prefix="bench_session_"))
    peers = {}
    try:
        for label, window in (("peer", None), ("summarizing peer", args.context_window)) if peer_turns else ():
            print(f"{label}: {peer_turns} turns…", file=sys.stderr, flush=True)
            peers[label] = run_peer(folder / "peer", users[:peer_turns], answers[:peer_turns], summary, every, label,
                                    window)
            shutil.rmtree(folder / "peer", ignore_errors=True)
            gc.collect()
        print(f"ours: {args.turns} turns…", file=sys.stderr, flush=True)
        ours = run_ours(folder / "ours", users, answers, summary, every, args.context_window, args.profile)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    first, last = slice(0, WINDOW), slice(-WINDOW, None)
    o_first, o_last = median_ms(ours["times"], first), median_ms(ours["times"], last)
    oc_first, oc_last = median_ms(ours["cpu"], first), median_ms(ours["cpu"], last)
    # whole turns alternate between folding (then indexing) and not, every other turn at 4096 tokens:
    # their median jumps between the two kinds, their mean is what a turn costs on average
    m_first, m_last = mean_ms(ours["times"], first), mean_ms(ours["times"], last)
    mc_first, mc_last = mean_ms(ours["cpu"], first), mean_ms(ours["cpu"], last)
    net = [t - p.get("query embedding", 0.0) - p.get("model", 0.0) for t, p in zip(ours["waits"], ours["answering"])]
    w_first, w_last = median_ms(ours["waits"], first), median_ms(ours["waits"], last)
    n_first, n_last = median_ms(net, first), median_ms(net, last)
    o_kb = ours["bytes"] / args.turns / 1024
    half = len(ours["speed"]) // 2  # samples of the first and of the last 100 turns
    s_first, s_last = (median_ms([f for f, _ in part], slice(None)) for part in (ours["speed"][:half], ours["speed"][half:]))
    p_first, p_last = (median_ms([p for _, p in part], slice(None)) for part in (ours["speed"][:half], ours["speed"][half:]))
    drift = s_last / s_first  # the host's
    own = (p_last / s_last) / (p_first / s_first)  # this process's own slowdown, the host's taken out
    print(f"session benchmark: {args.turns} turns, user messages and answers of ~{chars:.0f} characters "
          f"(every 5th pair with Japanese), scripted model, context window {args.context_window} tokens")
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at the end "
          "(other work on the machine inflates wall times; CPU times count this process only)")
    print(f"ours : per-turn overhead median first-{WINDOW} {o_first:6.2f} ms, last-{WINDOW} {o_last:6.2f} ms "
          f"(CPU {oc_first:.2f} / {oc_last:.2f} ms), all {median_ms(ours['times'], slice(None)):.2f} ms; "
          f"{args.turns} turns in {ours['wall']:.1f} s")
    print(f"       mean first-{WINDOW} {m_first:6.2f} ms, last-{WINDOW} {m_last:6.2f} ms (CPU {mc_first:.2f} / "
          f"{mc_last:.2f} ms)")
    print(f"       until the answer (what the user waits for; the upkeep after it runs while they type): "
          f"first-{WINDOW} {w_first:6.2f} ms, last-{WINDOW} {w_last:6.2f} ms")
    print(f"       the same without the model and the query embedding: first-{WINDOW} {n_first:6.2f} ms, last-{WINDOW} {n_last:6.2f} ms")
    for line in parts_table(ours, first, last) + (growth_lines(ours["profiles"]) if args.profile else []):
        print(line)
    indexed = {name: entry for name, entry in ours["during"].items()}
    bg_turns = sum(n for n, _ in indexed.values())
    bg_s = sum(sec for _, sec in indexed.values())
    left, drain_s = ours["drained"]
    per_turn = (bg_s + drain_s) / max(1, bg_turns + left) * 1000
    print(f"       indexing: {bg_turns} folded turns indexed during the run in {bg_s:.1f} s "
          f"({', '.join(f'{k}: {n}' for k, (n, _) in indexed.items()) or 'none'}); {left} left at the end, indexed "
          f"by drain() in {drain_s:.1f} s; {per_turn:.1f} ms per indexed turn "
          f"({1000 / per_turn if per_turn else 0:.0f} turns/s); index folder {ours['index_mb']:.1f} MB")
    pause_wall, pause_cpu = [w for w, _ in ours["pauses"]], [c for _, c in ours["pauses"]]
    total_cpu = [c + p for c, p in zip(ours["cpu"], pause_cpu)]
    tc_first, tc_last = mean_ms(total_cpu, first), mean_ms(total_cpu, last)
    print(f"       the user's pause after each turn, the backlog's thread indexing: mean first-{WINDOW} "
          f"{mean_ms(pause_wall, first):.2f} ms, last-{WINDOW} {mean_ms(pause_wall, last):.2f} ms (CPU "
          f"{mean_ms(pause_cpu, first):.2f} / {mean_ms(pause_cpu, last):.2f} ms); turn + pause CPU, mean "
          f"{tc_first:.2f} / {tc_last:.2f} ms = {tc_last / tc_first:.2f}x")
    print(f"       db {ours['bytes'] / 1e6:.1f} MB = {o_kb:.2f} KB/turn; {ours['folds']} compactions, "
          f"{ours['live']} messages in the live window at the end, {ours['checkpoints']} checkpoints kept")
    print(f"       db {ours['bytes'] / 1e6:.1f} MB (of which -wal {ours['wal'] / 1e6:.1f} MB) vs transcript content "
          f"{ours['transcript'] / 1e6:.1f} MB: db / transcript = {ours['bytes'] / max(ours['transcript'], 1):.2f}")
    grew, wrote = ours["bytes"] - ours["half"][0], ours["transcript"] - ours["half"][1]
    print(f"       second half of the run: db +{grew / 1e6:.1f} MB for +{wrote / 1e6:.1f} MB of transcript "
          f"content = {grew / max(wrote, 1):.2f}x (the rest is fixed: -wal file, checkpoints, schema)")
    result = {"turns": args.turns, "ours_ms_first": round(o_first, 3), "ours_ms_last": round(o_last, 3),
              "ours_cpu_ratio": round(oc_last / oc_first, 3), "ours_mean_ratio": round(m_last / m_first, 3),
              "ours_mean_cpu_ratio": round(mc_last / mc_first, 3), "ours_wait_ms_first": round(w_first, 3),
              "ours_wait_ms_last": round(w_last, 3), "ours_net_ms_first": round(n_first, 3),
              "ours_net_ms_last": round(n_last, 3), "ours_kb_per_turn": round(o_kb, 3), "peer_turns": peer_turns,
              "peer_ms_first": None, "peer_ms_last": None, "peer_kb_per_turn": None, "summarizing_ms_first": None,
              "summarizing_ms_last": None, "summarizing_kb_per_turn": None, "indexed_in_background": bg_turns,
              "indexed_at_end": left, "index_per_turn_ms": round(per_turn, 2),
              "pause_cpu_ms_first": round(mean_ms(pause_cpu, first), 3),
              "pause_cpu_ms_last": round(mean_ms(pause_cpu, last), 3), "total_cpu_ratio": round(tc_last / tc_first, 3),
              "speed_drift": round(drift, 3), "process_drift": round(own, 3)}
    for label, key in (("peer", "peer"), ("summarizing peer", "summarizing")):
        if label in peers:
            for line in peer_lines(label if label != "peer" else "peer ", peers[label], ours, peer_turns, args.turns,
                                   first, last):
                print(line)
            result.update({f"{key}_ms_first": round(median_ms(peers[label]["times"], first), 3),
                           f"{key}_ms_last": round(median_ms(peers[label]["times"], last), 3),
                           f"{key}_kb_per_turn": round(peers[label]["bytes"] / peer_turns / 1024, 3)})
    if not peers:
        print("peers: skipped (--peer-turns 0)")
    print(f"the machine's speed: a fixed piece of Python work took {s_first:.2f} ms (median) in a fresh process "
          f"during the first {WINDOW} turns and {s_last:.2f} ms during the last {WINDOW}: {drift:.2f}x; corrected for "
          f"it, the last-{WINDOW} / first-{WINDOW} means are {m_last / m_first / drift:.2f} in wall time and "
          f"{mc_last / mc_first / drift:.2f} in CPU time, the wait apart from the model and the query embedding "
          f"{n_last / drift:.2f} ms at the end")
    print(f"this process: the same work took {p_first:.2f} / {p_last:.2f} ms in it, {p_first / s_first:.2f}x and "
          f"{p_last / s_last:.2f}x a fresh process's: its own slowdown, the host's taken out, is {own:.2f}x")
    print(f"{verdict(n_first < TARGET_MS and n_last < TARGET_MS)} wait until the answer under {TARGET_MS:g} ms apart "
          f"from the model and the query embedding: first-{WINDOW} {n_first:.2f} ms, last-{WINDOW} {n_last:.2f} ms")
    print(f"{verdict(m_last <= TARGET_GROWTH * m_first and mc_last <= TARGET_GROWTH * mc_first)} no growth: "
          f"last-{WINDOW} / first-{WINDOW} means = {m_last / m_first:.2f} in wall time, {mc_last / mc_first:.2f} in CPU "
          f"time (medians {o_last / o_first:.2f} and {oc_last / oc_first:.2f}; the waits until the answer "
          f"{w_last / w_first:.2f}) (target <= {TARGET_GROWTH:g})")
    print(f"{verdict(o_kb < TARGET_KB)} storage under {TARGET_KB:g} KB/turn: {o_kb:.2f} KB/turn")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
