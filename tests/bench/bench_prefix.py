"""Time to first token over a real conversation with the embedded model: turn 1 vs turn 30.

    python tests/bench/bench_prefix.py [--turns 30] [--n-ctx 2048]

The prompt is laid out [system + summary][recent messages], so llama.cpp reuses its KV
cache for the unchanged prefix and only the new turn is evaluated; folding old turns into
the summary (rare) rebuilds it once. Prints each turn's time to first token and context
size, then turn 1 vs turn N, the medians of the first and last five turns, and the ratio.
"""

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import yaml  # noqa: E402

from graph.context import Context  # noqa: E402
from graph.session import Session  # noqa: E402

QUESTIONS = ["Tell me about the history of bicycles.", "How do gears work?", "What is a good daily exercise?",
             "Explain photosynthesis briefly.", "Why is the sky blue?", "Give me a pasta recipe.",
             "What is machine learning?", "How do I learn to swim?"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=30)
    ap.add_argument("--n-ctx", type=int, default=2048)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.yaml"
        cfg.write_text(yaml.safe_dump({"llm": {"backend": "embedded", "max_tokens": 96, "temperature": 0.0,
                                               "embedded": {"n_ctx": args.n_ctx}},
                                       "agent": {"max_tool_rounds": 0}}))
        session = Session(Context(home=str(Path(tmp) / "home"), config=str(cfg)))
        ttft = []
        for i in range(args.turns):
            list(session.turn(QUESTIONS[i % len(QUESTIONS)]))
            meta = session.store.last_answer_meta()
            ttft.append(meta["ttft_s"])
            print(f"turn {i + 1:3}: first token {meta['ttft_s'] * 1000:6.1f} ms, context {meta['context_tokens']:5} "
                  f"tokens, window {len(session.messages()):3} messages", flush=True)
        folds = sum(1 for r in session.store.history() if r["role"] == "user") - \
            sum(1 for m in session.messages() if m.type == "human")
        first5, last5 = statistics.median(ttft[1:6]), statistics.median(ttft[-5:])
        print(f"turn 1: {ttft[0] * 1000:.1f} ms   turn {args.turns}: {ttft[-1] * 1000:.1f} ms   "
              f"ratio {ttft[-1] / ttft[0]:.2f}x")
        print(f"median turns 2-6: {first5 * 1000:.1f} ms   median last 5: {last5 * 1000:.1f} ms   "
              f"ratio {last5 / first5:.2f}x   ({folds} turns folded into the summary)")
        print(json.dumps({"turns": args.turns, "ttft_ms_turn1": round(ttft[0] * 1000, 1),
                          "ttft_ms_last": round(ttft[-1] * 1000, 1), "median_ms_first5": round(first5 * 1000, 1),
                          "median_ms_last5": round(last5 * 1000, 1), "folded_turns": folds}))


if __name__ == "__main__":
    main()
