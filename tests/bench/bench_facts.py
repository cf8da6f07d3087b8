"""The embedded model on a small fact set: raw llama.cpp against the same model through the agent.

    python tests/bench/bench_facts.py [--max-tokens 256] [--limit N]

FACTS holds 38 short questions with known answers. Both sides answer each of them:

- raw: the bundled SmolLM2 GGUF through `llama_cpp.Llama.create_chat_completion`, the question
  alone (the chat template's own default system prompt), greedy, at most --max-tokens tokens;
- agent: one endless session in a fresh data folder with the default config and
  `llm.backend: embedded` (tools, long-term memory and learning on, as a user has them), the
  questions sent one after another as turns (`Session.turn`, as `agent.py -m` sends them),
  the answer being what the user is shown (the "token" events), timed until the answer is in.

An answer is right when it contains one of the question's accepted answers as a whole word
(case-insensitive). Prints each question's answers (shortened) when they differ in being
right, then the table: right, mean characters, median seconds per answer for both sides;
the last line is one JSON object. No asserts; the data folder is temporary.
"""

import argparse
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

FACTS = [
    ("What is the capital of France?", ["Paris"]),
    ("What is the capital of Japan?", ["Tokyo"]),
    ("What is the capital of Italy?", ["Rome"]),
    ("What is the capital of Germany?", ["Berlin"]),
    ("What is the capital of Spain?", ["Madrid"]),
    ("What is the capital of the United Kingdom?", ["London"]),
    ("What is the largest planet in our solar system?", ["Jupiter"]),
    ("Which planet is known as the Red Planet?", ["Mars"]),
    ("What planet do we live on?", ["Earth"]),
    ("What star is at the center of our solar system?", ["Sun"]),
    ("How many days are in a week?", ["seven", "7"]),
    ("How many months are in a year?", ["twelve", "12"]),
    ("How many hours are in a day?", ["twenty-four", "24"]),
    ("How many legs does a spider have?", ["eight", "8"]),
    ("How many sides does a triangle have?", ["three", "3"]),
    ("How many continents are there on Earth?", ["seven", "7"]),
    ("What is 2 + 2?", ["four", "4"]),
    ("What is the square root of 9?", ["three", "3"]),
    ("At what temperature in degrees Celsius does water boil at sea level?", ["100", "one hundred"]),
    ("At what temperature in degrees Celsius does water freeze?", ["0 degrees", "0°", "0 °C", "zero"]),
    ("What is frozen water called?", ["ice"]),
    ("What is the chemical formula of water?", ["H2O"]),
    ("What is the chemical symbol for gold?", ["Au"]),
    ("Which gas do plants take in from the air for photosynthesis?", ["carbon dioxide", "CO2"]),
    ("What color is the sky on a clear day?", ["blue"]),
    ("What do bees make?", ["honey"]),
    ("What is the tallest animal in the world?", ["giraffe", "giraffes"]),
    ("What is the largest mammal in the world?", ["blue whale", "whale"]),
    ("What is the fastest land animal?", ["cheetah", "cheetahs"]),
    ("Which organ pumps blood through the human body?", ["heart"]),
    ("What is the largest ocean on Earth?", ["Pacific"]),
    ("Who wrote Romeo and Juliet?", ["Shakespeare"]),
    ("Who wrote the Harry Potter books?", ["Rowling"]),
    ("Who was the first president of the United States?", ["Washington"]),
    ("What language is mainly spoken in Brazil?", ["Portuguese"]),
    ("What is the currency of Japan?", ["yen"]),
    ("What is the currency of the United States?", ["dollar", "dollars"]),
    ("What is the opposite of hot?", ["cold"]),
]


def right(answer: str, accepted: list[str]) -> bool:
    """Does the answer contain an accepted answer, not as part of a longer word or number ("-18.0°C" is not 0°)?"""
    return any(re.search(r"(?<![\w.\-])" + re.escape(a) + (r"(?!\w|[.,]\d)" if a[-1].isalnum() else ""), answer,
                         re.IGNORECASE) for a in accepted)


def raw_answers(questions: list[str], max_tokens: int) -> list[tuple[str, float]]:
    from graph.models.embedded import default_model_path
    from graph.models.llama_process import open_llama

    llama = open_llama(str(default_model_path()), n_ctx=2048, verbose=False)
    out = []
    for question in questions:
        start = time.perf_counter()
        reply = llama.create_chat_completion(messages=[{"role": "user", "content": question}], temperature=0.0,
                                             max_tokens=max_tokens)
        out.append((reply["choices"][0]["message"]["content"] or "", time.perf_counter() - start))
    return out


def agent_answers(questions: list[str], folder: Path) -> list[tuple[str, float]]:
    import yaml

    from graph.context import Context
    from graph.session import Session

    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({"llm": {"backend": "embedded"}}), encoding="utf-8")
    session = Session(Context(home=str(folder / "home"), config=str(config), cwd=str(folder)))
    out = []
    for i, question in enumerate(questions, 1):
        start, shown, seconds = time.perf_counter(), [], None
        for kind, data in session.turn(question):
            if kind == "token":
                shown.append(data)
            elif kind == "done":
                seconds = time.perf_counter() - start  # the upkeep after it runs while the user reads
        out.append(("".join(shown), seconds))
        print(f"  [agent {i}/{len(questions)} {seconds:.1f}s] {' '.join(out[-1][0].split())[:70]!r}",
              file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-tokens", type=int, default=256, help="the raw model's answer limit")
    ap.add_argument("--limit", type=int, default=len(FACTS), help="the first N questions only")
    args = ap.parse_args()
    facts = FACTS[:args.limit]
    questions = [q for q, _ in facts]
    folder = Path(tempfile.mkdtemp(prefix="bench_facts_"))
    try:
        print("raw…", file=sys.stderr, flush=True)
        raw = raw_answers(questions, args.max_tokens)
        print("agent…", file=sys.stderr, flush=True)
        agent = agent_answers(questions, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = {}
    for name, answers in (("raw", raw), ("agent", agent)):
        ok = [right(text, accepted) for (text, _), (_, accepted) in zip(answers, facts)]
        rows[name] = {"right": sum(ok), "of": len(ok), "chars": round(statistics.mean(len(t) for t, _ in answers)),
                      "median_chars": round(statistics.median(len(t) for t, _ in answers)),
                      "seconds": round(statistics.median(s for _, s in answers), 2), "ok": ok}
    for i, (question, _) in enumerate(facts):
        if rows["raw"]["ok"][i] != rows["agent"]["ok"][i]:
            print(f"{question}\n  raw   ({'right' if rows['raw']['ok'][i] else 'wrong'}): "
                  f"{' '.join(raw[i][0].split())[:110]!r}\n  agent ({'right' if rows['agent']['ok'][i] else 'wrong'}): "
                  f"{' '.join(agent[i][0].split())[:110]!r}")
    print(f"{'':<6} {'right':>9} {'mean chars':>11} {'median chars':>13} {'median s':>9}")
    for name, row in rows.items():
        print(f"{name:<6} {row['right']:>4} / {row['of']:<2} {row['chars']:>11} {row['median_chars']:>13} "
              f"{row['seconds']:>9.2f}")
    print(json.dumps({name: {k: v for k, v in row.items() if k != "ok"} for name, row in rows.items()}))


if __name__ == "__main__":
    main()
