"""Tool calls per turn on plain questions: does the model call tools where none helps?

    python tests/bench/bench_tool_calls.py [--turns 10] [--backend embedded]

The questions of tests/simulated_user.py (nothing to look up, remember or recall), every other
one opened with a complaint ("Too long, shorter please."), go through `Session.turn` with the
default tools and long-term memory on, twice in fresh data folders: as the agent is now, and
with every memory tool offered on every turn (tools/recall.py's `wanted` always true: how it
was before issue 21). Prints tool calls per turn, which tools, and seconds per turn. The last
line of stdout is one JSON object with the numbers.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from simulated_user import EN

from graph.context import Context
from graph.session import Session
from graph.tools import recall


def run(root: Path, name: str, turns: int, backend: str) -> dict:
    folder = root / name
    folder.mkdir()
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({"llm": {"backend": backend}, "evolution": {"every_turns": 0},
                                      "tools": {"browser": {"enabled": False}}}), encoding="utf-8")
    session = Session(Context(home=str(folder / "home"), config=str(config), cwd=str(folder)))
    questions = list(EN)[:turns]
    calls, start = Counter(), time.perf_counter()
    for i, question in enumerate(questions):
        text = ("Too long, shorter please. " if i % 2 else "") + question[:1].upper() + question[1:]
        for kind, value in session.turn(text):
            if kind == "tool_call":
                calls[value["name"]] += 1
        print(f"  [{name} {i + 1}/{turns}] {dict(calls)}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    session.ctx.services.close()
    return {"calls_per_turn": round(sum(calls.values()) / turns, 2), "tools": dict(calls),
            "s_per_turn": round(seconds / turns, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--backend", default="embedded")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-tool-calls-"))
    out = {}
    try:
        wanted = recall.wanted
        recall.wanted = lambda message: True
        out["memory tools on every turn (before)"] = run(root, "before", args.turns, args.backend)
        recall.wanted = wanted
        out["memory tools when asked (now)"] = run(root, "now", args.turns, args.backend)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.turns} plain questions (every other one opened with a complaint), backend {args.backend}:")
    for name, row in out.items():
        print(f"  {name:<38} {row['calls_per_turn']:.2f} tool calls/turn  {row['s_per_turn']:.1f} s/turn"
              f"  {row['tools'] or '-'}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
