"""Latency routing of visible reasoning: `auto` vs always-think, embedded model, 20 mixed questions.

    python tests/bench/bench_think.py [--runs 1]

Each question is asked in a fresh session (so the window is the same) once with
reasoning mode `auto` (think only when the message needs it) and once with `on`, and
the time until the answer is complete is recorded. Prints both medians and totals, the
ratio auto / on, and which questions `auto` sent through thinking.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import yaml  # noqa: E402

from graph.context import Context  # noqa: E402
from graph.models.thinking import needs_thinking  # noqa: E402
from graph.session import Session  # noqa: E402

QUESTIONS = [
    "Hello!", "What is the capital of Japan?", "Thanks, that helps.", "こんにちは", "Who wrote Hamlet?",
    "What colour is the sky?", "Good morning!", "Name a fruit.", "What is your name?", "See you later.",
    "What is 17 * 23?", "Why do leaves change colour in autumn?", "Plan a three-day trip to Kyoto step by step.",
    "Write a Python function that reverses a string.", "Explain how a bicycle gear works.",
    "If a train leaves at 3pm at 60 km/h, when has it gone 150 km?", "なぜ空は青いのですか？",
    "Compare tea and coffee: pros and cons.", "How do I debug a memory leak?", "Calculate 15% of 240.",
]


def ask(tmp: Path, mode: str, question: str, i: int) -> tuple[float, bool]:
    cfg = tmp / f"{mode}.yaml"
    if not cfg.exists():
        cfg.write_text(yaml.safe_dump({"llm": {"backend": "embedded", "max_tokens": 128, "temperature": 0.0},
                                       "agent": {"max_tool_rounds": 0},
                                       "reasoning": {"mode": mode, "max_tokens": 256}}))
    session = Session(Context(home=str(tmp / f"{mode}-{i}"), config=str(cfg)))
    list(session.turn(question))
    meta = session.store.last_answer_meta()
    return meta["seconds"], "thought_tokens" in meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"auto": [], "on": []}
    thought = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for i, q in enumerate(QUESTIONS):
                for mode in ("auto", "on"):
                    seconds, did_think = ask(Path(tmp), mode, q, run * 100 + i)
                    times[mode].append(seconds)
                    if mode == "auto" and run == 0:
                        thought.append(did_think)
                print(f"{q[:50]:52} auto {times['auto'][-1]:5.2f} s{' (thought)' if thought[i] else '          '}"
                      f"   on {times['on'][-1]:5.2f} s", flush=True)
    routed = sum(thought)
    agree = sum(t == needs_thinking(q) for t, q in zip(thought, QUESTIONS))
    for mode in ("auto", "on"):
        print(f"{mode:4}: median {statistics.median(times[mode]):.2f} s, total {sum(times[mode]):.1f} s")
    print(f"auto sent {routed}/{len(QUESTIONS)} questions through thinking ({agree}/{len(QUESTIONS)} as routed)")
    print(f"ratio auto / always-think: median {statistics.median(times['auto']) / statistics.median(times['on']):.2f}x,"
          f" total {sum(times['auto']) / sum(times['on']):.2f}x")


if __name__ == "__main__":
    main()
