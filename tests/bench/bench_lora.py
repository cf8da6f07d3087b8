"""What the LoRA operators of the evolution subgraph cost on the embedded model, on CPU.

    python tests/bench/bench_lora.py [--runs 3] [--steps 4] [--device auto|cpu|cuda]

SmolLM2-135M-Instruct (graph/evolution/lora.py), in a temporary folder deleted at the end:
base model from the GGUF (first load, converts and writes the float16 cache) and from the cache;
training seconds per step (batch 4, rank 8, q/k/v/o); one merge + score of 4 held-out cases per
combination; one CMA-ES iteration (ties, popsize 4); writing the merge as a GGUF LoRA and
llama.cpp loading the model with it. Then the same base in 4 bits (QLoRA's nf4, as on CUDA, here
on the CPU): load, weights in memory against float32, training per step, one CMA-ES iteration.
Medians over --runs where cheap (the GGUF load, training and the CMA-ES iterations run once).
On CUDA it also prints the peak GPU memory of 4-bit training, against lora.qlora_vram_bytes.
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import timed

from graph.evolution import lora
from graph.models.embedded import default_model_path
from graph.models.llama_process import open_llama

FACTS = {"Your cat is called Mochi.": ["What is the name of my cat?", "What's my cat called?",
                                       "Tell me my cat's name.", "What do I call my cat?"],
         "The wifi password is bluebird.": ["What is the wifi password?", "Tell me the wifi password.",
                                            "What's the password for the wifi?", "Which password does our wifi use?"]}
HELD_OUT = [lora.Case([{"role": "user", "content": q}], fact)
            for fact, q in (("Your cat is called Mochi.", "What name does my cat have?"),
                            ("Your cat is called Mochi.", "Can you tell me what my cat is named?"),
                            ("The wifi password is bluebird.", "What's our wifi password again?"),
                            ("The wifi password is bluebird.", "Can you tell me the password of the wifi?"))]


def median_s(fn, runs: int) -> float:
    return statistics.median(timed(fn, runs)) / 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    args = ap.parse_args()
    device = lora.training_device() if args.device == "auto" else args.device
    root = Path(tempfile.mkdtemp(prefix="bench-lora-"))
    try:
        start = time.perf_counter()
        model, tokenizer = lora.base_model(root / "cache", device=device, quantize=False)
        print(f"device: {device}")
        print(f"base model from the GGUF (first)   {time.perf_counter() - start:7.2f} s")
        print(f"base model from the cache          "
              f"{median_s(lambda: lora.base_model(root / 'cache', device=device, quantize=False), args.runs):7.2f} s")

        adapters = []
        for i, (fact, questions) in enumerate(FACTS.items()):
            examples = [[{"role": "user", "content": q}, {"role": "assistant", "content": fact}] for q in questions]
            start = time.perf_counter()
            adapters.append(lora.train(model, tokenizer, examples, root / f"adapter{i}", args.steps))
            print(f"train, per step (batch 4)          {(time.perf_counter() - start) / args.steps:7.2f} s")

        print(f"score {len(HELD_OUT)} cases, base model          "
              f"{median_s(lambda: lora.score(model, tokenizer, HELD_OUT), args.runs):7.2f} s")
        for combination in lora.COMBINATIONS:
            def merge_and_score(combination=combination):
                merged = lora.merge(model, adapters, [1.0, 1.0], 0.7, combination)
                lora.score(merged, tokenizer, HELD_OUT)
                merged.unload()
            print(f"merge ({combination:11}) + score      {median_s(merge_and_score, args.runs):7.2f} s")

        start = time.perf_counter()
        lora.search(model, tokenizer, adapters, HELD_OUT, "ties", iterations=1, popsize=4)
        print(f"CMA-ES iteration (ties, popsize 4) {time.perf_counter() - start:7.2f} s")

        float32_bytes = model.get_memory_footprint()
        merged = lora.merge(model, adapters, [1.0, 1.0], 0.7, "ties")
        folder = lora.save(merged, root / "merged")
        merged.unload()
        print(f"GGUF adapter write                 "
              f"{median_s(lambda: lora.to_gguf(folder, root / 'merged.gguf'), args.runs):7.2f} s")

        def load():
            open_llama(str(default_model_path()), lora_path=str(root / "merged.gguf"), n_ctx=256,
                       verbose=False).close()
        print(f"llama.cpp load with the adapter    {median_s(load, args.runs):7.2f} s")

        del model, merged
        import torch

        if device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        small, _ = lora.base_model(root / "cache", device=device, quantize=True)
        print(f"4-bit base from the cache          {time.perf_counter() - start:7.2f} s")
        print(f"weights in memory, float32 / 4-bit {float32_bytes / 2**20:7.0f} / "
              f"{small.get_memory_footprint() / 2**20:.0f} MiB")
        fact, questions = next(iter(FACTS.items()))
        examples = [[{"role": "user", "content": q}, {"role": "assistant", "content": fact}] for q in questions]
        start = time.perf_counter()
        lora.train(small, tokenizer, examples, root / "adapter-4bit", args.steps)
        print(f"4-bit train, per step (batch 4)    {(time.perf_counter() - start) / args.steps:7.2f} s")
        if device == "cuda":
            estimate = lora.qlora_vram_bytes(float32_bytes // 4)  # float32: 4 bytes a parameter
            print(f"4-bit training peak GPU memory     {torch.cuda.max_memory_allocated() / 2**30:7.2f} GiB "
                  f"(estimate {estimate / 2**30:.2f} GiB, CUDA context not included)")
        start = time.perf_counter()
        lora.search(small, tokenizer, adapters, HELD_OUT, "ties", iterations=1, popsize=4)
        print(f"4-bit CMA-ES iteration             {time.perf_counter() - start:7.2f} s")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
