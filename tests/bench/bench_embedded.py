"""Embedded backend vs raw llama.cpp on the same prompt: time to first token and tokens/s.

    python tests/bench/bench_embedded.py [--runs 7] [--tokens 128]

Our EmbeddedChat (LangChain chat model: message conversion, context fitting, callbacks)
against `llama_cpp.Llama.create_chat_completion(stream=True)` on the same loaded model,
alternating runs; prints medians and the ratios (ours / raw). Greedy decoding, so both
generate the same tokens.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from langchain_core.messages import HumanMessage, SystemMessage  # noqa: E402

from graph.embedded import EmbeddedChat, default_model_path, load_llama, to_chat  # noqa: E402

PROMPT = [SystemMessage("You are a helpful assistant."),
          HumanMessage("Explain in a few paragraphs how a bicycle works.")]


def timed(stream) -> tuple[float, float, int]:
    start, first, n = time.perf_counter(), None, 0
    for piece in stream:
        if piece:
            first = first or time.perf_counter()
            n += 1
    end = time.perf_counter()
    return first - start, (n - 1) / (end - first), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=128)
    args = ap.parse_args()
    path = default_model_path()
    ours = EmbeddedChat(model_path=str(path), temperature=0.0, max_tokens=args.tokens)
    llama = load_llama(path, ours.n_ctx, ours.n_threads)
    chat = to_chat(PROMPT)

    def raw():
        for part in llama.create_chat_completion(messages=chat, stream=True, temperature=0.0,
                                                 max_tokens=args.tokens):
            yield part["choices"][0]["delta"].get("content")

    def mine():
        for chunk in ours.stream(PROMPT):
            yield chunk.content

    results = {"raw": [], "ours": []}
    timed(raw())  # warm-up
    for _ in range(args.runs):
        llama.reset()  # no KV-cache reuse between runs: both pay the full prompt
        results["raw"].append(timed(raw()))
        llama.reset()
        results["ours"].append(timed(mine()))
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v), v[0][2])
           for k, v in results.items()}
    for name, (ttft, speed, n) in med.items():
        print(f"{name:5} ttft median {ttft * 1000:7.1f} ms   {speed:6.1f} tok/s   ({n} tokens, {args.runs} runs)")
    print(f"ratio ours/raw: ttft {med['ours'][0] / med['raw'][0]:.2f}x, tok/s {med['ours'][1] / med['raw'][1]:.2f}x")


if __name__ == "__main__":
    main()
