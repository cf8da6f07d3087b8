"""How long does evolution take, and does fitness rise over generations?

    python tests/bench/bench_evolution.py [--population 8] [--cases 16] [--generations 1]
                                          [--fake-generations 6] [--seeds 5] [--no-embedded]

1. The real embedded model (SmolLM2-135M-Instruct via llama.cpp, the default backend without
   Ollama) as the agent, the judge and the breeding operator: one run of `--generations`
   breeding rounds with `--population` genomes and `--cases` evaluation cases (the probe set;
   a fresh data folder has no held-out examples). Prints the wall time of the seed generation
   (every genome scored) and of each bred generation (children only: the survivors keep their
   scores), seconds per case (one answer + one judgement), and the fitness per generation.
2. The scripted judge (tests/simulated_user.py: SimulatedChat answers by the rules in its
   prompt, the judge scores by the simulated user's hidden preferences: at most 40 words, no
   football; the breeding operator is noisy): `--fake-generations` rounds, population 6,
   8 cases, for seeds 0..`--seeds`-1: best and mean fitness per generation, and what won.
The last line of stdout is one JSON object with the numbers.
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from simulated_user import SYSTEM_PROMPT, SimulatedChat

from graph.context import Context
from graph.evolution import archive
from graph.evolution.graph import evolve
from graph.learning import selfprompt
from graph.models import llm


def context(root: Path, name: str, settings: dict) -> Context:
    folder = root / name
    folder.mkdir(parents=True)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({"memory": {"enabled": False}, "learning": {"policy": False}, **settings}),
                      encoding="utf-8")
    return Context(home=str(folder / "home"), config=str(config), cwd=str(folder))


def embedded(root: Path, args) -> dict:
    ctx = context(root, "embedded", {"llm": {"backend": "embedded", "max_tokens": 64, "temperature": 0.3},
                                     "evolution": {"eval_cases": args.cases, "answer_tokens": 64}})
    marks, start = [], time.perf_counter()

    def seen(event):
        if event["stage"] == "selected":
            marks.append((event["generation"], time.perf_counter(), event))
            print(f"  generation {event['generation']}: {time.perf_counter() - start:6.1f} s  best {event['best']:.3f}"
                  f"  mean {event['mean']:.3f}  scored {event['scored']}", flush=True)

    print(f"embedded model: population {args.population}, {args.cases} cases, {args.generations} bred generation(s)")
    result = evolve(ctx, "bench", seen, generations=args.generations, population=args.population,
                    budget_minutes=120)
    total = time.perf_counter() - start
    times, last = [], start
    for generation, at, _ in marks:
        times.append(round(at - last, 1))
        last = at
    genomes = archive.of_run(ctx.store, result["id"])
    scored = sum(g.status in ("scored", "promoted") for g in genomes)
    invalid = [g.note for g in genomes if g.status == "invalid"]
    print(f"  seed generation (all {args.population} scored): {times[0]} s;"
          f" bred generation(s): {times[1:]} s; whole run {total:.1f} s")
    print(f"  {scored} genomes scored, {len(invalid)} children invalid"
          + (f" (e.g. {invalid[0]!r})" if invalid else ""))
    print(f"  per case (answer + judgement): {times[0] / (args.population * args.cases):.2f} s")
    print(f"  decision: {result['summary']['decision']}")
    return {"seed_generation_s": times[0], "bred_generations_s": times[1:], "total_s": round(total, 1),
            "scored": scored, "invalid": len(invalid), "decision": result["summary"]["decision"]}


def fake(root: Path, args) -> dict:
    out = {}
    for seed in range(args.seeds):
        ctx = context(root, f"fake-{seed}", {"agent": {"system_prompt": SYSTEM_PROMPT, "max_tool_rounds": 0},
                                             "evolution": {"eval_cases": 8}})
        ctx.services.put("backend", llm.Backend("fake", "simulated", SimulatedChat(seed=seed), 4096))
        result = evolve(ctx, "bench", generations=args.fake_generations, population=6, budget_minutes=60)
        rows = result["summary"]["generations"]
        out[seed] = {"best": [r["best"] for r in rows], "mean": [r["mean"] for r in rows]}
        rules = selfprompt.split(selfprompt.current(ctx).text)[1]
        print(f"  seed {seed}: best {' '.join(f'{b:.2f}' for b in out[seed]['best'])} | mean "
              f"{' '.join(f'{m:.2f}' for m in out[seed]['mean'])} | serving now: {rules}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--generations", type=int, default=1)
    parser.add_argument("--fake-generations", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-embedded", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-evolution-"))
    try:
        print(f"scripted judge (hidden preferences), population 6, 8 cases, {args.fake_generations} generations:")
        numbers = {"fake": fake(root, args)}
        if not args.no_embedded:
            numbers["embedded"] = embedded(root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(numbers))


if __name__ == "__main__":
    main()
