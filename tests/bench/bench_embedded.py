"""Embedded backend vs raw llama.cpp on the same prompt: time to first token and tokens/s.

    python tests/bench/bench_embedded.py [--runs 7] [--tokens 128] [--extra-buffers auto|on|off]

Our EmbeddedChat (LangChain chat model: message conversion, callbacks, and llama.cpp in a
process of its own, llama_process.py) against `llama_cpp.Llama.create_chat_completion(stream=True)`
in this process, on the same GGUF with the same extra-buffer setting, alternating runs;
prints medians and the ratios (ours / raw). Greedy decoding, so both generate the same
tokens. Each run starts with an empty KV cache on both sides.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
# Two llama.cpp instances take turns on the same cores here (raw in this process, ours in its
# own): OpenMP threads that spin after their run would slow the other side, so they sleep.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from langchain_core.messages import HumanMessage, SystemMessage  # noqa: E402

from graph.models import cpu  # noqa: E402
from graph.models.embedded import EmbeddedChat, default_model_path, to_chat  # noqa: E402
from graph.models.llama_process import open_llama  # noqa: E402

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
    ap.add_argument("--extra-buffers", choices=["auto", "on", "off"], default="auto",
                    help="llama.cpp's extra buffer types (llm.embedded.extra_buffers)")
    args = ap.parse_args()
    path = default_model_path()
    ours = EmbeddedChat(model_path=str(path), temperature=0.0, max_tokens=args.tokens, extra_buffers=args.extra_buffers)
    on, why = cpu.extra_buffers(args.extra_buffers)
    print(f"extra buffer types {why}")
    llama = open_llama(str(path), on, n_ctx=ours.n_ctx, verbose=False)
    chat = to_chat(PROMPT)

    def raw():
        for part in llama.create_chat_completion(messages=chat, stream=True, temperature=0.0,
                                                 max_tokens=args.tokens):
            yield part["choices"][0]["delta"].get("content")

    def mine():
        for chunk in ours.stream(PROMPT):
            yield chunk.content

    results = {"raw": [], "ours": []}
    timed(raw())  # warm-up (and our model process started)
    timed(mine())
    for _ in range(args.runs):
        llama.reset()  # no KV-cache reuse between runs: both pay the full prompt
        results["raw"].append(timed(raw()))
        ours.process.request("reset")
        results["ours"].append(timed(mine()))
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v), v[0][2])
           for k, v in results.items()}
    for name, (ttft, speed, n) in med.items():
        print(f"{name:5} ttft median {ttft * 1000:7.1f} ms   {speed:6.1f} tok/s   ({n} tokens, {args.runs} runs)")
    print(f"ratio ours/raw: ttft {med['ours'][0] / med['raw'][0]:.2f}x, tok/s {med['ours'][1] / med['raw'][1]:.2f}x")


if __name__ == "__main__":
    main()
